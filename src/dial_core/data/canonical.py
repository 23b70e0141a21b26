"""The canonical dataset format every adapter writes and every later stage reads (DESIGN.md §3).

```
<root>/dataset.json      name, classes, ignore_index, ground sampling distance, source, ...
<root>/images/<id>.tif   RGB uint8 GeoTIFF, tiled
<root>/labels/<id>.tif   uint8 class indices, 255 = ignore, same grid as the image
```
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window
from tqdm.auto import tqdm

from dial_core.atomic import atomic_path, write_json
from dial_core.errors import DataError
from dial_core.json_files import read_json

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
GDAL_CACHE_MB = 256  # GDAL's block cache while converting (its default, 5 % of RAM, can exceed 1 GiB)
BLOCK_ROWS = 1024  # rows per read/write: a 1024 × 6000 block row costs ~25 MB raw, ~200 MB while converted


@dataclass
class DatasetInfo:
    """Contents of ``dataset.json``."""

    name: str
    classes: list[dict]  # [{"name": str, "color": [r, g, b]}], index = class id
    ground_sampling_distance_m: float | None
    source: str
    licence: str
    ignore_index: int = IGNORE_INDEX
    images: list[str] = field(default_factory=list)
    class_shares: dict[str, float] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    # Predefined split groups the adapter knows (e.g. Potsdam's official {"train", "test"} tiles);
    # the split step draws train/val inside "train". Empty when the adapter knows none.
    groups: dict[str, list[str]] = field(default_factory=dict)
    # Where the ground sampling distance comes from: "GeoTIFF transform (<CRS>)", a params key,
    # or the adapter's published value; None when unknown.
    ground_sampling_distance_from: str | None = None
    # Spatial blocks (split.mode: blocks): block id -> {scene, row_off, col_off, height, width}.
    blocks: dict[str, dict] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]


@dataclass
class RasterSource:
    """One image/label pair an adapter offers, read window by window.

    ``read(window)`` returns ``((h, w, 3) uint8 RGB, (h, w) uint8 class ids / 255)`` for that window
    of the ``height`` × ``width`` grid; :func:`write_dataset` never asks for more than ``BLOCK_ROWS``
    rows at a time, so a 6000×6000 tile never has to be in memory at once.
    """

    image_id: str
    height: int
    width: int
    read: Callable[[Window], tuple[np.ndarray, np.ndarray]]
    transform: Affine | None = None
    crs: CRS | str | None = None
    source_files: tuple[Path, ...] = ()  # the files read, for checksums in dataset.json


@dataclass
class Sample:
    """One image with its label, as an adapter hands it to :func:`write_dataset`."""

    image_id: str
    image: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8
    transform: Affine | None = None
    crs: CRS | str | None = None


def _profile(height: int, width: int, count: int, transform: Affine | None, crs) -> dict:
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": "uint8",
        "compress": "deflate",
    }
    if transform is not None:  # none given: the file gets no geotransform (a plain, ungeoreferenced image)
        profile["transform"] = transform
    if crs is not None:
        profile["crs"] = CRS.from_user_input(crs)
    # Tiled so windowed reads of big rasters touch only the blocks they need.
    profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sample_source(sample: Sample) -> RasterSource:
    """A Sample as a RasterSource whose reads slice its in-memory arrays."""
    if sample.image.shape[:2] != sample.label.shape:
        raise DataError(
            f"image {sample.image_id}: image shape {sample.image.shape[:2]} and label shape "
            f"{sample.label.shape} differ; labels must lie on the image grid"
        )
    image, label = sample.image, sample.label

    def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = window.toslices()
        return image[rows, cols], label[rows, cols]

    height, width = label.shape
    return RasterSource(sample.image_id, height, width, read, sample.transform, sample.crs)


def _check_block(source: RasterSource, window: Window, image: np.ndarray, label: np.ndarray, info: DatasetInfo) -> None:
    """What every block must satisfy before it is written: shapes, dtypes and class ids."""
    expected = (int(window.height), int(window.width))
    if image.ndim != 3 or image.shape != (*expected, 3) or label.shape != expected:
        raise DataError(
            f"image {source.image_id}: rows {int(window.row_off)}..{int(window.row_off + window.height) - 1} "
            f"read as image shape {image.shape} and label shape {label.shape}, expected {(*expected, 3)} and "
            f"{expected}; image and label must share one {source.height}×{source.width} grid of RGB pixels"
        )
    for kind, array in (("image", image), ("label", label)):
        if array.dtype != np.uint8:
            raise DataError(f"image {source.image_id}: the {kind} is {array.dtype}; the canonical format stores uint8")
    valid = label[label != info.ignore_index]
    if valid.size and valid.max() >= info.n_classes:
        raise DataError(
            f"image {source.image_id}: label value {int(valid.max())} is not a class id "
            f"(0..{info.n_classes - 1}); map it to a class or to {info.ignore_index} (ignore)"
        )


def _write_source(root: Path, source: RasterSource, info: DatasetInfo) -> np.ndarray:
    """Write one source block-row by block-row into temporary GeoTIFFs renamed at the end; class counts."""
    counts = np.zeros(info.n_classes, dtype=np.int64)
    block_rows = max(1, int(BLOCK_ROWS))
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # no transform: a plain image, on purpose
        image_tmp = stack.enter_context(atomic_path(root / "images" / f"{source.image_id}.tif"))
        label_tmp = stack.enter_context(atomic_path(root / "labels" / f"{source.image_id}.tif"))
        # Entered after the temporary paths, so both rasters are closed before they are renamed.
        image_dst = stack.enter_context(
            rasterio.open(image_tmp, "w", **_profile(source.height, source.width, 3, source.transform, source.crs))
        )
        label_dst = stack.enter_context(
            rasterio.open(label_tmp, "w", **_profile(source.height, source.width, 1, source.transform, source.crs))
        )
        for row in range(0, source.height, block_rows):
            window = Window(0, row, source.width, min(block_rows, source.height - row))
            image, label = source.read(window)
            image, label = np.asarray(image), np.asarray(label)
            _check_block(source, window, image, label, info)
            counts += np.bincount(label[label != info.ignore_index].ravel(), minlength=info.n_classes)
            image_dst.write(np.moveaxis(image, -1, 0), window=window)
            label_dst.write(label[None], window=window)
    return counts


def georeferenced_gsd(transform: Affine | None, crs) -> float | None:
    """Pixel size in metres from a GeoTIFF grid when its CRS is projected (feet are converted); else None.

    Geographic CRSs (degrees) and grids without a CRS say nothing about metres. (Web Mercator's
    "metres" grow with latitude; such data should give dataset.folder.gsd_m and be reprojected.)
    """
    if transform is None or crs is None:
        return None
    crs = CRS.from_user_input(crs)
    if not crs.is_projected:
        return None
    x, y = abs(transform.a), abs(transform.e)
    if transform.b or transform.d or x <= 0:
        return None  # rotated grids: no single pixel size
    return float((x + y) / 2 if y else x) * float(crs.linear_units_factor[1])


def _settle_gsd(info: DatasetInfo, measured: dict[str, float], unmeasured: list[str]) -> None:
    """The transform's ground resolution wins when every image has one; otherwise the given one."""
    given, given_from = info.ground_sampling_distance_m, info.ground_sampling_distance_from or "the adapter"
    if not measured:
        if given is None:
            log.info("ground sampling distance unknown: no projected CRS in the images and none given (dataset.folder.gsd_m)")
        return
    values = np.array(list(measured.values()))
    gsd = float(np.median(values))
    if values.max() > 1.01 * values.min():
        log.warning("images have different pixel sizes (%.4g to %.4g m); dataset.json records the median %.4g m",
                    values.min(), values.max(), gsd)
    if unmeasured:
        log.warning("%d image(s) (%s) have no projected CRS; their ground resolution is assumed to be %.4g m",
                    len(unmeasured), ", ".join(unmeasured[:3]), gsd)
    if given is not None and abs(given - gsd) <= 0.01 * gsd:
        info.ground_sampling_distance_from = f"{given_from} (the GeoTIFF transform agrees)"
        return
    if given is not None:
        log.warning("the GeoTIFF transform gives %.4g m per pixel but %s says %.4g m; dataset.json records the transform's",
                    gsd, given_from, given)
    info.ground_sampling_distance_m = float(f"{gsd:.9g}")  # no float noise from the transform's arithmetic
    info.ground_sampling_distance_from = "GeoTIFF transform (projected CRS)"


def _checksum_key(path: Path, parent: Path | None) -> str:
    if parent is not None:
        try:
            return path.relative_to(parent).as_posix()
        except ValueError:
            pass
    return path.name


def write_dataset(
    root: str | Path, info: DatasetInfo, samples: Iterable[Sample | RasterSource], *, total: int | None = None
) -> DatasetInfo:
    """Write samples in the canonical format; ``dataset.json`` is written last, so it marks completion.

    Sources are read and written ``BLOCK_ROWS`` rows at a time, so memory stays bounded by one block
    row of the widest image, whatever the raster size. ``checksums`` records the sha256 of the source
    files the sources name (``source_files``, keyed by their path below their common folder), and of
    the written files of sources that name none (keyed ``images/<id>.tif``, ``labels/<id>.tif``).
    """
    root = Path(root)
    counts = np.zeros(info.n_classes, dtype=np.int64)
    ids: list[str] = []
    seen: set[str] = set()
    source_digests: dict[Path, str] = {}
    unsourced: list[str] = []  # ids of sources that name no source file: their written files are hashed
    measured_gsd: dict[str, float] = {}
    unmeasured: list[str] = []
    if total is None and hasattr(samples, "__len__"):
        total = len(samples)  # type: ignore[arg-type]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):  # adapters' reads run inside, under the same cap
        for item in tqdm(samples, total=total, desc=f"writing {info.name}", unit="image"):
            source = _sample_source(item) if isinstance(item, Sample) else item
            if not isinstance(source, RasterSource):
                raise TypeError(f"write_dataset takes Sample or RasterSource items, got {type(item).__name__}")
            _check_id(source.image_id, root)
            if source.image_id in seen:
                raise DataError(f"{root}: image id {source.image_id!r} occurs twice; ids must be unique")
            if source.height < 1 or source.width < 1:
                raise DataError(f"image {source.image_id}: empty raster ({source.height}×{source.width})")
            seen.add(source.image_id)
            gsd = georeferenced_gsd(source.transform, source.crs)
            measured_gsd.update({source.image_id: gsd} if gsd is not None else {})
            unmeasured += [] if gsd is not None else [source.image_id]
            counts += _write_source(root, source, info)
            if not source.source_files:
                unsourced.append(source.image_id)
            for path in source.source_files:
                path = Path(os.path.abspath(path))  # not resolve(): DVC cache links would rename the file
                if path not in source_digests:
                    try:
                        source_digests[path] = _sha256(path)
                    except OSError as err:
                        raise DataError(f"image {source.image_id}: cannot checksum its source file {path}: {err}") from None
            ids.append(source.image_id)
            log.info("wrote %s (%d×%d)", source.image_id, source.height, source.width)
    if not ids:
        raise DataError(f"{root}: the adapter produced no images")
    total_pixels = max(int(counts.sum()), 1)
    info.images = ids
    info.class_shares = {name: float(c) / total_pixels for name, c in zip(info.class_names, counts)}
    checksums: dict[str, str] = {}
    if source_digests:
        parent = Path(os.path.commonpath([p.parent for p in source_digests]))
        checksums.update({_checksum_key(p, parent): d for p, d in sorted(source_digests.items())})
    for image_id in unsourced:
        for kind in ("images", "labels"):
            checksums[f"{kind}/{image_id}.tif"] = _sha256(root / kind / f"{image_id}.tif")
    info.checksums = checksums
    _settle_gsd(info, measured_gsd, unmeasured)
    write_json(root / "dataset.json", asdict(info))
    return info


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _check_id(image_id: str, root: Path) -> None:
    """Ids become file names and CSV cells: letters, digits and ``_ . + -`` only."""
    if not isinstance(image_id, str) or not _SAFE_ID.match(image_id):
        raise DataError(
            f"{root}: image id {image_id!r} is not a safe file name; use letters, digits and _ . + - only "
            f"(the adapter must sanitise ids)"
        )


def load_info(root: str | Path) -> DatasetInfo:
    raw = read_json(Path(root) / "dataset.json", "dataset description", "run the dataset preparation rule first",
                    "delete it and prepare the dataset again")
    return DatasetInfo(**raw)


def _open_quietly(path: Path):
    """rasterio.open without the NotGeoreferencedWarning: datasets such as Dubai have no grid, on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def _read(path: Path, window: Window | None) -> np.ndarray:
    try:
        with _open_quietly(path) as src:
            return src.read(window=window)
    except RasterioIOError as err:
        raise DataError(f"cannot read raster {path}: {err}; re-run the dataset preparation") from None


def read_image(root: str | Path, image_id: str, window: Window | None = None) -> np.ndarray:
    """(H, W, 3) uint8 image, optionally a window of it (windowed read: big rasters stay on disk)."""
    return np.moveaxis(_read(Path(root) / "images" / f"{image_id}.tif", window), 0, -1)


def read_label(root: str | Path, image_id: str, window: Window | None = None) -> np.ndarray:
    """(H, W) uint8 label map."""
    return _read(Path(root) / "labels" / f"{image_id}.tif", window)[0]


def raster_shape(root: str | Path, image_id: str) -> tuple[int, int]:
    path = Path(root) / "images" / f"{image_id}.tif"
    try:
        with _open_quietly(path) as src:
            return src.height, src.width
    except RasterioIOError as err:
        raise DataError(f"cannot read raster {path}: {err}; re-run the dataset preparation") from None


def class_shares(root: str | Path, image_ids: list[str], n_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Share of each class among the labelled pixels of ``image_ids`` (for frequency balancing)."""
    counts = np.zeros(n_classes, dtype=np.int64)
    for image_id in image_ids:
        label = read_label(root, image_id)
        counts += np.bincount(label[label != ignore_index].ravel(), minlength=n_classes)[:n_classes]
    return counts / max(int(counts.sum()), 1)


def raster_georef(root: str | Path, image_id: str) -> tuple[Affine | None, CRS | None]:
    """(transform, crs) of an image; (None, None) when it has no grid (identity transform, no CRS)."""
    path = Path(root) / "images" / f"{image_id}.tif"
    try:
        with _open_quietly(path) as src:
            transform, crs = src.transform, src.crs
    except RasterioIOError as err:
        raise DataError(f"cannot read raster {path}: {err}; re-run the dataset preparation") from None
    if crs is None and transform == Affine.identity():
        return None, None
    return transform, crs
