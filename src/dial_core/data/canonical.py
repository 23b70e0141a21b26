"""The canonical dataset format every adapter writes and every later stage reads (DESIGN.md §3).

```
<root>/dataset.json      name, classes, ignore_index, ground sampling distance, source, ...
<root>/images/<id>.tif   RGB uint8 GeoTIFF, tiled
<root>/labels/<id>.tif   uint8 class indices, 255 = ignore, same grid as the image
```
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from dial_core.atomic import atomic_path, write_json
from dial_core.errors import DataError

IGNORE_INDEX = 255


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

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]


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
        "transform": transform or Affine.identity(),
    }
    if crs is not None:
        profile["crs"] = CRS.from_user_input(crs)
    # Tiled so windowed reads of big rasters touch only the blocks they need.
    profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def write_geotiff(path: Path, array: np.ndarray, transform: Affine | None = None, crs=None) -> None:
    """Write (H, W) or (H, W, C) uint8 as a tiled GeoTIFF, atomically."""
    bands = array[..., None] if array.ndim == 2 else array
    height, width, count = bands.shape
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **_profile(height, width, count, transform, crs)) as dst:
            dst.write(np.moveaxis(bands, -1, 0))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_dataset(root: str | Path, info: DatasetInfo, samples: Iterable[Sample]) -> DatasetInfo:
    """Write samples in the canonical format; ``dataset.json`` is written last, so it marks completion."""
    root = Path(root)
    counts = np.zeros(info.n_classes, dtype=np.int64)
    ids: list[str] = []
    for sample in samples:
        if sample.image.shape[:2] != sample.label.shape:
            raise DataError(
                f"image {sample.image_id}: image shape {sample.image.shape[:2]} and label shape "
                f"{sample.label.shape} differ; labels must lie on the image grid"
            )
        valid = sample.label[sample.label != info.ignore_index]
        if valid.size and valid.max() >= info.n_classes:
            raise DataError(
                f"image {sample.image_id}: label value {int(valid.max())} is not a class id "
                f"(0..{info.n_classes - 1}); map it to a class or to {info.ignore_index} (ignore)"
            )
        counts += np.bincount(valid.ravel(), minlength=info.n_classes)
        write_geotiff(root / "images" / f"{sample.image_id}.tif", sample.image, sample.transform, sample.crs)
        write_geotiff(root / "labels" / f"{sample.image_id}.tif", sample.label, sample.transform, sample.crs)
        ids.append(sample.image_id)
    if not ids:
        raise DataError(f"{root}: the adapter produced no images")
    total = max(int(counts.sum()), 1)
    info.images = ids
    info.class_shares = {name: float(c) / total for name, c in zip(info.class_names, counts)}
    info.checksums = {
        f"{kind}/{i}.tif": _sha256(root / kind / f"{i}.tif") for i in ids for kind in ("images", "labels")
    }
    write_json(root / "dataset.json", asdict(info))
    return info


def load_info(root: str | Path) -> DatasetInfo:
    path = Path(root) / "dataset.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} is missing; run the dataset preparation rule first") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it and prepare the dataset again") from None
    return DatasetInfo(**raw)


def _read(path: Path, window: Window | None) -> np.ndarray:
    try:
        with rasterio.open(path) as src:
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
        with rasterio.open(path) as src:
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
