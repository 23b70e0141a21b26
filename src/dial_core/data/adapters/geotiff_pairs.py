"""Shared by the adapters whose images and masks are GeoTIFF pairs on the same grid (INRIA, AIRS,
Potsdam-like folders): open both, check they agree, and read them window by window."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from dial_core.data.canonical import RasterSource
from dial_core.data.labels import values_to_index
from dial_core.errors import DataError


def raster_meta(path: Path) -> tuple[int, int, int, object, object]:
    """(height, width, bands, transform, crs) of a raster, DataError naming it when unreadable."""
    try:
        with rasterio.open(path) as src:
            return src.height, src.width, src.count, src.transform, src.crs
    except (RasterioError, OSError) as err:
        raise DataError(f"cannot read raster {path}: {err}; the file is corrupt or truncated, download it again") from None


def read_window(path: Path, window: Window, bands: list[int] | None = None) -> np.ndarray:
    try:
        with rasterio.open(path) as src:
            return src.read(bands, window=window)
    except (RasterioError, OSError) as err:
        raise DataError(f"cannot read {path} (window {window}): {err}; the file is corrupt or truncated") from None


def paired_source(
    image_id: str,
    image_path: Path,
    label_path: Path,
    label_mapping: Mapping[int, int],
) -> RasterSource:
    """A RasterSource over an RGB GeoTIFF and a single-band integer mask on the same grid."""
    h, w, bands, transform, crs = raster_meta(image_path)
    lh, lw, _, ltransform, lcrs = raster_meta(label_path)
    if (h, w) != (lh, lw):
        raise DataError(f"{image_path} is {h}×{w} but its mask {label_path} is {lh}×{lw}; they must share one grid")
    if crs and lcrs and (crs != lcrs or not transform.almost_equals(ltransform)):
        raise DataError(
            f"{image_path} (CRS {crs}, transform {tuple(transform)[:6]}) and {label_path} "
            f"(CRS {lcrs}, transform {tuple(ltransform)[:6]}) are not georeferenced alike"
        )
    if bands < 3:
        raise DataError(f"{image_path} has {bands} band(s); an RGB image needs 3")

    def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
        image = np.moveaxis(read_window(image_path, window, [1, 2, 3]), 0, -1)
        label = read_window(label_path, window, [1])[0]
        return image, values_to_index(label, label_mapping, f"{label_path} (window {window})")

    return RasterSource(image_id, h, w, read, transform, crs, (image_path, label_path))


def require_folder(path: Path, what: str, how: str) -> Path:
    if not path.is_dir():
        raise DataError(f"{what}: folder {path} does not exist; {how}")
    return path


