"""Any local folder of image/mask pairs (GeoTIFF, PNG or JPEG), with classes given in the config.

Options (README "Your own data" lists each with an example):
``images`` / ``masks`` (folders; may be the same folder when ``mask_suffix`` tells masks apart),
``image_glob`` (default ``"*"``), ``mask_suffix`` (appended to the image stem to name its mask,
default ``""``; the mask may end in .tif, .tiff, .png or .jpg),
``classes``: a list of ``{name, color: [r, g, b] or "#RRGGBB"}`` for colour masks, **or** of
``{name, value: int}`` (optionally with a display ``color``) for value masks: single-band integer
rasters, palette PNGs read as their indices, or grey-level RGB masks (R = G = B) read as values;
0/255 masks declare ``{name: building, value: 255}`` (255 is a class unless listed as ignore),
``ignore_colors`` / ``ignore_values`` (mapped to 255), ``gsd_m`` (ground sampling distance in
metres when the images are not georeferenced in a projected CRS), ``bands`` (three 1-based band
numbers read as R, G, B, for 4-band or multi-band images), ``val_images`` / ``val_masks`` (a
validation subfolder: its pairs form the "val" group, use with ``split.mode: predefined``),
``source`` and ``licence`` (free text for dataset.json).
GeoTIFF georeferencing is kept; image and mask must share one grid.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from dial_core.data.adapters._raster import (
    RASTER_SUFFIXES,
    RasterMeta,
    Sources,
    check_options,
    check_same_grid,
    colour_table,
    describe_window,
    probe,
    read_bands,
    read_rgb,
    rgb_bands,
    safe_id,
)
from dial_core.data.canonical import IGNORE_INDEX, DatasetInfo, RasterSource
from dial_core.data.labels import hex_to_rgb, rgb_to_index, values_to_index
from dial_core.errors import ConfigError, DataError

OPTIONS = (
    "images", "masks", "image_glob", "mask_suffix", "classes", "ignore_colors", "ignore_values", "gsd_m", "bands",
    "val_images", "val_masks", "source", "licence",
)
SOURCE_OPTIONS = ("images", "masks", "val_images", "val_masks")  # folders whose files are the raw data
MASK_SUFFIXES = (".tif", ".tiff", ".png", ".jpg")
WHERE = "dataset.folder"
log = logging.getLogger(__name__)
# Display colours for value-coded classes that give none (tab10).
_DEFAULT_COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]


def _colour(value, key: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        return hex_to_rgb(value)
    if (
        isinstance(value, (list, tuple)) and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        return tuple(value)  # type: ignore[return-value]
    raise ConfigError(f"{key} = {value!r}: give a colour as [r, g, b] with 0..255 each, or as '#RRGGBB'")


def _int(value, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} = {value!r}: give an integer mask value")
    return value


def parse_classes(options: dict) -> tuple[list[dict], str, dict]:
    """(classes for dataset.json, "color" | "value", mapping colour/value -> class id or 255)."""
    classes = options.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, dict) for c in classes):
        raise ConfigError(f"{WHERE}.classes: give a non-empty list of {{name, color}} or {{name, value}} entries")
    if len(classes) >= IGNORE_INDEX:
        raise ConfigError(f"{WHERE}.classes: {len(classes)} classes; at most {IGNORE_INDEX - 1} fit (255 is ignore)")
    by_value = ["value" in c for c in classes]
    if any(by_value) and not all(by_value):
        raise ConfigError(f"{WHERE}.classes: give every class a value (integer masks) or none (colour masks), not a mix")
    mode = "value" if all(by_value) else "color"
    mapping: dict = {}
    out: list[dict] = []
    for index, entry in enumerate(classes):
        key = f"{WHERE}.classes[{index}]"
        unknown = set(entry) - {"name", "color", "value"}
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {', '.join(sorted(unknown))}; accepted: name, color, value")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}.name: give the class a name")
        if mode == "color":
            if "color" not in entry:
                raise ConfigError(f"{key}: a colour-mask class needs color: [r, g, b]")
            code = _colour(entry["color"], f"{key}.color")
        else:
            code = _int(entry["value"], f"{key}.value")
        if code in mapping:
            raise ConfigError(f"{key}: {mode} {code} is already used by class {out[mapping[code]]['name']!r}")
        mapping[code] = index
        shown = _colour(entry["color"], f"{key}.color") if "color" in entry else _DEFAULT_COLOURS[index % 10]
        out.append({"name": name, "color": list(shown)})
    ignore_key = "ignore_colors" if mode == "color" else "ignore_values"
    other_key = "ignore_values" if mode == "color" else "ignore_colors"
    if options.get(other_key):
        raise ConfigError(f"{WHERE}.{other_key}: classes are given by {mode}, so use {ignore_key} instead")
    ignores = options.get(ignore_key) or []
    if not isinstance(ignores, list):
        raise ConfigError(f"{WHERE}.{ignore_key}: give a list")
    for index, item in enumerate(ignores):
        key = f"{WHERE}.{ignore_key}[{index}]"
        code = _colour(item, key) if mode == "color" else _int(item, key)
        if code in mapping and mapping[code] != IGNORE_INDEX:
            raise ConfigError(f"{key}: {code} is also class {out[mapping[code]]['name']!r}; it cannot be both")
        mapping[code] = IGNORE_INDEX
    return out, mode, mapping


def _folder(options: dict, key: str) -> Path:
    path = Path(str(options[key])).expanduser()
    if not path.is_dir():
        raise DataError(f"{WHERE}.{key}: folder {path} does not exist; point it at the folder holding the {key.replace('_', ' ')}")
    return path


def _pairs(options: dict, images_key: str, masks_key: str) -> list[tuple[str, Path, Path]]:
    images_dir, masks_dir = _folder(options, images_key), _folder(options, masks_key)
    glob = options.get("image_glob") or "*"
    suffix = options.get("mask_suffix") or ""
    masks = {p.name.lower(): p for p in masks_dir.iterdir() if p.is_file()}
    images = sorted(p for p in images_dir.glob(glob) if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
    if images_dir.resolve() == masks_dir.resolve() and suffix:
        # One folder for both: a file that is the mask of another image is not an image.
        mask_names = {f"{p.stem}{suffix}{ext}".lower() for p in images for ext in MASK_SUFFIXES}
        images = [p for p in images if p.name.lower() not in mask_names]
    if not images:
        raise DataError(f"{WHERE}.{images_key}: no raster ({', '.join(RASTER_SUFFIXES)}) matches {glob!r} in {images_dir}")
    pairs, seen = [], {}
    for image in images:
        candidates = [masks[n] for n in (f"{image.stem}{suffix}{ext}".lower() for ext in MASK_SUFFIXES) if n in masks]
        if not candidates:
            expected = f"{image.stem}{suffix}" + "{" + ",".join(MASK_SUFFIXES) + "}"
            raise DataError(f"image {image} has no mask: expected {masks_dir / expected}; add the mask or narrow image_glob")
        if len(candidates) > 1:
            raise DataError(f"image {image} has several masks ({', '.join(str(c) for c in candidates)}); keep one")
        image_id = safe_id(image.stem)
        if image_id in seen:
            raise DataError(f"{image} and {seen[image_id]} both give image id {image_id!r}; rename one")
        seen[image_id] = image
        pairs.append((image_id, image, candidates[0]))
    return pairs


def _unknown_value_hint(mapping: dict) -> str:
    """What to do about a mask value the classes do not name; 255 gets its two usual meanings."""
    if 255 in mapping:
        return "add it to classes (as a value) or to ignore_values"
    return (
        "add it to classes (as a value) or to ignore_values; if the value is 255: in 0/255 masks it is usually "
        "the foreground class (give that class value: 255), in other masks it often marks unlabelled pixels "
        "(add 255 to ignore_values)"
    )


def _read_mask(mask: RasterMeta, window: Window, mode: str, mapping: dict, table: np.ndarray | None, grey_rgb: bool) -> np.ndarray:
    where = f"{mask.path} ({describe_window(window)})"
    if mode == "color":
        return rgb_to_index(read_rgb(mask, window, table=table, bands=None if mask.palette else [1, 2, 3]), mapping, where)
    if grey_rgb:
        rgb = read_bands(mask, window, [1, 2, 3])
        coloured = (rgb[0] != rgb[1]) | (rgb[1] != rgb[2])
        if coloured.any():
            r, c = np.argwhere(coloured)[0]
            raise DataError(
                f"{where}: {int(coloured.sum())} pixels are not grey (R, G, B differ, e.g. {tuple(int(v) for v in rgb[:, r, c])} "
                f"at row {int(window.row_off) + int(r)}, column {int(window.col_off) + int(c)}); classes are given by value, "
                "which needs R = G = B: give the classes by color instead"
            )
        values = rgb[0]
    else:
        values = read_bands(mask, window, [1])[0]
    return values_to_index(values, mapping, where, _unknown_value_hint(mapping))


def _source(image_id: str, image_path: Path, mask_path: Path, mode: str, mapping: dict, bands: list[int] | None) -> RasterSource:
    image = probe(image_path, f"image {image_id}")
    mask = probe(mask_path, f"mask of {image_id}")
    image_bands = rgb_bands(image, bands, f"{WHERE}.bands")
    if mode == "color" and mask.count < 3 and not mask.palette:
        raise DataError(
            f"{mask_path} has {mask.count} band(s) of values but {WHERE}.classes are given by color; "
            "give the classes as {name, value} instead"
        )
    grey_rgb = False
    if mode == "value":
        if mask.count in (3, 4):
            grey_rgb = True  # an RGB(A) mask whose pixels are grey levels: R = G = B are the values
            log.info("%s: %d-band mask read as grey levels (R = G = B) against the class values", mask_path, mask.count)
        elif mask.count != 1:
            raise DataError(
                f"{mask_path} has {mask.count} bands; a value mask has one band (or three equal ones); "
                "give the classes as {name, color} for a colour mask"
            )
        if not np.issubdtype(np.dtype(mask.dtype), np.integer):
            raise DataError(f"{mask_path} is {mask.dtype}; an integer mask needs an integer type")
    check_same_grid(image_id, image, mask)
    table = colour_table(mask) if mode == "color" and mask.palette else None

    def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
        return read_rgb(image, window, bands=image_bands), _read_mask(mask, window, mode, mapping, table, grey_rgb)

    return RasterSource(
        image_id, image.height, image.width, read, image.transform or mask.transform, image.crs or mask.crs,
        (image_path, mask_path),
    )


def _bands(options: dict) -> list[int] | None:
    bands = options.get("bands")
    if bands is None:
        return None
    if not isinstance(bands, list) or len(bands) != 3 or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in bands):
        raise ConfigError(f"{WHERE}.bands = {bands!r}: give three 1-based band numbers read as R, G, B, e.g. [1, 2, 3]")
    return bands


def prepare(options: dict, name: str) -> tuple[DatasetInfo, Iterator[RasterSource], dict[str, list[str]]]:
    """Dataset description, a lazy stream of pair sources, and {"train": ids} (plus "val" with val_images)."""
    check_options(options, OPTIONS, ["images", "masks", "classes"], WHERE)
    classes, mode, mapping = parse_classes(options)
    gsd = options.get("gsd_m")
    if gsd is not None and (isinstance(gsd, bool) or not isinstance(gsd, (int, float)) or gsd <= 0):
        raise ConfigError(f"{WHERE}.gsd_m = {gsd!r}: give a positive number of metres, or leave it out")
    bands = _bands(options)
    if mode == "value" and mapping.get(255, IGNORE_INDEX) != IGNORE_INDEX:
        log.info("mask value 255 is class %r (a class, not ignore: it is not in ignore_values)", classes[mapping[255]]["name"])
    pairs = _pairs(options, "images", "masks")
    groups = {"train": [image_id for image_id, _, _ in pairs]}
    if options.get("val_images"):
        val_pairs = _pairs({**options, "val_masks": options.get("val_masks") or options["masks"]}, "val_images", "val_masks")
        clash = sorted(set(groups["train"]) & {image_id for image_id, _, _ in val_pairs})
        if clash:
            raise DataError(
                f"{WHERE}.val_images: image id(s) {', '.join(clash[:5])} occur in both {options['images']} and "
                f"{options['val_images']}; an image is either training or validation — rename or remove one"
            )
        groups["val"] = [image_id for image_id, _, _ in val_pairs]
        pairs += val_pairs
    elif options.get("val_masks"):
        raise ConfigError(f"{WHERE}.val_masks is set without val_images; give the validation images folder too")
    info = DatasetInfo(
        name=name,
        classes=classes,
        ground_sampling_distance_m=float(gsd) if gsd is not None else None,
        source=str(options.get("source") or f"local folder {options['images']} (masks {options['masks']})"),
        licence=str(options.get("licence") or "unknown (local data)"),
        ground_sampling_distance_from=f"{WHERE}.gsd_m" if gsd is not None else None,
    )
    return info, Sources(pairs, lambda pair: _source(*pair, mode, mapping, bands)), groups
