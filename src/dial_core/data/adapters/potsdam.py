"""ISPRS Potsdam: 38 true orthophoto tiles of 6000×6000 px at 5 cm with colour-coded labels.

Source layout (ISPRS distributes it on request): ``2_Ortho_RGB.zip`` holding
``top_potsdam_{r}_{c}_RGB.tif`` and ``5_Labels_all.zip`` holding ``top_potsdam_{r}_{c}_label.tif``,
or the folders they extract to, anywhere below ``options["path"]``. Extracted folders are used
first; tiles they lack are extracted from the zips (only the members needed) into ``extract_dir``.

Options: ``path``; ``tiles`` ("train" | "test" | "all" | a list like ["2_10", "6_7"]);
``label_view`` ("full": the six classes | "buildings": building vs. background, as in the DIAL
domain-adaptation experiment); ``resample_gsd_m`` (null, or a ground sampling distance such as
0.075 to match AIRS: images bilinear, labels nearest); ``extract_dir`` (default
``<path>/extracted``); ``exclude_tiles`` (tiles to leave out, e.g. ["4_12"], whose label is known
to carry colours outside the official palette in some releases).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from dial_core.data.adapters._raster import (
    Sources,
    check_options,
    check_same_grid,
    colour_table,
    describe_window,
    probe,
    read_rgb,
    rgb_bands,
)
from dial_core.data.canonical import DatasetInfo, RasterSource
from dial_core.data.labels import rgb_to_index
from dial_core.data.synthetic import BUILDINGS_CLASSES, POTSDAM_CLASSES
from dial_core.errors import ConfigError, DataError

NATIVE_GSD_M = 0.05
TRAIN_TILES = [
    "2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12", "5_10", "5_11", "5_12",
    "6_10", "6_11", "6_12", "6_7", "6_8", "6_9", "7_10", "7_11", "7_12", "7_7", "7_8", "7_9",
]
TEST_TILES = ["2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13", "6_14", "6_15", "7_13"]
# Official palette; black marks boundaries / undefined pixels (noBoundary variant) -> ignore.
PALETTE: dict[tuple[int, int, int], int] = {
    (255, 255, 255): 0,  # impervious surfaces
    (0, 0, 255): 1,  # building
    (0, 255, 255): 2,  # low vegetation
    (0, 255, 0): 3,  # tree
    (255, 255, 0): 4,  # car
    (255, 0, 0): 5,  # clutter
    (0, 0, 0): 255,  # boundary / undefined
}
BUILDING = 1
# Full class id -> buildings view id (1 building, 0 background, 255 stays ignore).
BUILDINGS_LUT = np.zeros(256, np.uint8)
BUILDINGS_LUT[BUILDING] = 1
BUILDINGS_LUT[255] = 255

ARCHIVES = {"image": "2_Ortho_RGB.zip", "label": "5_Labels_all.zip"}
_PATTERNS = {"image": re.compile(r"^top_potsdam_(\d+_\d+)_RGB\.tif$"), "label": re.compile(r"^top_potsdam_(\d+_\d+)_label\.tif$")}
OPTIONS = ("path", "tiles", "label_view", "resample_gsd_m", "extract_dir", "exclude_tiles")
HOW_TO_GET = (
    "ISPRS Potsdam is distributed on request by ISPRS (2D Semantic Labeling Contest - Potsdam); "
    "put 2_Ortho_RGB.zip and 5_Labels_all.zip, or the folders they extract to, in that folder"
)


def tile_id(tile: str) -> str:
    return f"potsdam_{tile}"


def _tiles(options: dict) -> list[str]:
    tiles = options.get("tiles", "all")
    if tiles == "train":
        chosen = list(TRAIN_TILES)
    elif tiles == "test":
        chosen = list(TEST_TILES)
    elif tiles == "all":
        chosen = [*TRAIN_TILES, *TEST_TILES]
    elif isinstance(tiles, list) and tiles and all(isinstance(t, str) for t in tiles):
        unknown = [t for t in tiles if t not in TRAIN_TILES and t not in TEST_TILES]
        if unknown:
            raise ConfigError(
                f"dataset.potsdam.tiles: {', '.join(unknown)} are not Potsdam tiles; "
                f"known: {' '.join(TRAIN_TILES + TEST_TILES)}"
            )
        chosen = list(dict.fromkeys(tiles))
    else:
        raise ConfigError(f"dataset.potsdam.tiles = {tiles!r}: choose train, test, all, or a list of tiles like ['2_10']")
    excluded = options.get("exclude_tiles") or []
    if not isinstance(excluded, list):
        raise ConfigError(f"dataset.potsdam.exclude_tiles = {excluded!r}: give a list of tiles like ['4_12']")
    chosen = [t for t in chosen if t not in set(excluded)]
    if not chosen:
        raise ConfigError("dataset.potsdam: no tile left after exclude_tiles")
    return chosen


def _index(folder: Path) -> dict[str, dict[str, Path]]:
    """{"image": {tile: path}, "label": {tile: path}} of the tiles found below ``folder``."""
    found: dict[str, dict[str, Path]] = {"image": {}, "label": {}}
    if not folder.is_dir():
        return found
    # Shallowest path first, so a tile present twice resolves the same way every run.
    for path in sorted(folder.rglob("top_potsdam_*.tif"), key=lambda p: (len(p.parts), str(p))):
        for kind, pattern in _PATTERNS.items():
            match = pattern.match(path.name)
            if match:
                found[kind].setdefault(match.group(1), path)
    return found


def _find_archive(root: Path, name: str) -> Path | None:
    direct = root / name
    if direct.is_file():
        return direct
    return next(iter(sorted(root.rglob(name))), None)


def _extract(root: Path, extract_dir: Path, kind: str, tiles: list[str]) -> dict[str, Path]:
    """Extract the files of ``tiles`` (of one kind) from its zip into ``extract_dir``: {tile: path}.

    Only the members needed are extracted; :func:`safe_extract_zip` checks member paths, writes
    through a staging folder and skips files already extracted with their full size.
    """
    archive = _find_archive(root, ARCHIVES[kind])
    if archive is None or not tiles:
        return {}
    suffix = "RGB" if kind == "image" else "label"
    wanted = {f"top_potsdam_{t}_{suffix}.tif" for t in tiles}
    try:
        with zipfile.ZipFile(archive) as handle:
            members = [i.filename for i in handle.infolist() if not i.is_dir() and Path(i.filename).name in wanted]
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{archive} is not a readable zip archive ({err}); delete it and download it again") from None
    if not members:
        return {}
    from dial_core.data.archives import safe_extract_zip  # imported late: only zips need it

    found: dict[str, Path] = {}
    for path in sorted(safe_extract_zip(archive, extract_dir, members), key=lambda p: (len(p.parts), str(p))):
        match = _PATTERNS[kind].match(path.name)
        if match:
            found.setdefault(match.group(1), path)
    return found


def locate_tiles(root: Path, tiles: list[str], extract_dir: Path) -> dict[str, tuple[Path, Path]]:
    """{tile: (RGB tif, label tif)}: extracted folders first, then the zips; DataError for what is missing."""
    found = _index(root)
    # Earlier extractions are complete files (safe_extract_zip renames each file into place).
    for kind, paths in _index(extract_dir).items():
        for tile, path in paths.items():
            found[kind].setdefault(tile, path)
    for kind in found:
        missing = [t for t in tiles if t not in found[kind]]
        if missing:
            found[kind].update(_extract(root, extract_dir, kind, missing))
    for kind, suffix, archive in (("image", "RGB", ARCHIVES["image"]), ("label", "label", ARCHIVES["label"])):
        lacking = [t for t in tiles if t not in found[kind]]
        if lacking:
            names = ", ".join(f"top_potsdam_{t}_{suffix}.tif" for t in lacking[:5])
            more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
            raise DataError(
                f"ISPRS Potsdam in {root}: {names}{more} not found (neither extracted nor in {archive}); {HOW_TO_GET}"
            )
    return {t: (found["image"][t], found["label"][t]) for t in tiles}


def _source(tile: str, image_path: Path, label_path: Path, label_view: str, gsd_m: float | None) -> RasterSource:
    image_id = tile_id(tile)
    image = probe(image_path, f"Potsdam image {image_id}")
    label = probe(label_path, f"Potsdam label {image_id}")
    bands = rgb_bands(image)
    if label.count < 3 and not label.palette:
        raise DataError(f"{label_path} has {label.count} band(s); Potsdam labels are RGB colour images")
    check_same_grid(image_id, image, label)
    transform = image.transform or label.transform
    crs = image.crs or label.crs
    height, width, out_shape = image.height, image.width, None
    if gsd_m is not None:
        native = abs(transform.a) if transform is not None and crs is not None and crs.is_projected else NATIVE_GSD_M
        height = max(1, round(image.height * native / gsd_m))
        width = max(1, round(image.width * native / gsd_m))
        out_shape = (height, width)
        if transform is not None:
            transform = transform @ Affine.scale(image.width / width, image.height / height)
    table = colour_table(label) if label.palette else None
    label_bands = None if label.palette else rgb_bands(label)

    def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
        rgb = read_rgb(image, window, out_shape, Resampling.bilinear, bands=bands)
        colours = read_rgb(label, window, out_shape, Resampling.nearest, table, bands=label_bands)
        where = f"{label_path} ({describe_window(window)}{' of the resampled grid' if out_shape else ''})"
        index = rgb_to_index(colours, PALETTE, where)
        if label_view == "buildings":
            index = BUILDINGS_LUT[index]
        return rgb, index

    return RasterSource(image_id, height, width, read, transform, crs, (image_path, label_path))


def prepare(options: dict, name: str) -> tuple[DatasetInfo, Iterator[RasterSource], dict[str, list[str]]]:
    """Dataset description, a lazy stream of tile sources, and the official {"train", "test"} groups."""
    check_options(options, OPTIONS, ["path"], "dataset.potsdam")
    label_view = options.get("label_view", "full")
    if label_view not in ("full", "buildings"):
        raise ConfigError(f"dataset.potsdam.label_view = {label_view!r}: choose full or buildings")
    gsd_m = options.get("resample_gsd_m")
    if gsd_m is not None and (isinstance(gsd_m, bool) or not isinstance(gsd_m, (int, float)) or gsd_m <= 0):
        raise ConfigError(f"dataset.potsdam.resample_gsd_m = {gsd_m!r}: give a positive number of metres, or null")
    tiles = _tiles(options)
    root = Path(options["path"]).expanduser()
    if not root.is_dir():
        raise DataError(f"ISPRS Potsdam folder {root} does not exist; {HOW_TO_GET}")
    extract_dir = Path(options.get("extract_dir") or root / "extracted").expanduser()
    paths = locate_tiles(root, tiles, extract_dir)

    view = "six classes" if label_view == "full" else "buildings vs. background"
    gsd_text = f"resampled to {gsd_m} m" if gsd_m is not None else f"native {NATIVE_GSD_M} m"
    info = DatasetInfo(
        name=name,
        classes=[dict(c) for c in (POTSDAM_CLASSES if label_view == "full" else BUILDINGS_CLASSES)],
        ground_sampling_distance_m=float(gsd_m) if gsd_m is not None else NATIVE_GSD_M,
        source=f"ISPRS 2D Semantic Labeling Contest - Potsdam, 2_Ortho_RGB + 5_Labels_all, {view}, {gsd_text}",
        licence="ISPRS benchmark data: research use under the ISPRS conditions (obtained on request)",
    )
    groups = {
        "train": [tile_id(t) for t in tiles if t in TRAIN_TILES],
        "test": [tile_id(t) for t in tiles if t in TEST_TILES],
    }
    sources = Sources(tiles, lambda t: _source(t, *paths[t], label_view, gsd_m))
    return info, sources, groups


__all__ = ["NATIVE_GSD_M", "PALETTE", "TEST_TILES", "TRAIN_TILES", "locate_tiles", "prepare"]
