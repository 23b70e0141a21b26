"""An image in (any RGB raster rasterio reads: GeoTIFF, JPEG, PNG), class and uncertainty GeoTIFFs out.

Outputs keep the image's grid: the same CRS and transform, or none for an image without
georeferencing (its pixels are then the coordinates, [col, row]). A class map is uint8 with a colour
table, the class names in its band description and in tags (``CLASS_NAMES``: a JSON list; band tags
``CLASS_<i>``) so a GIS shows the right colours and a reader finds the names. Every file is written
atomically.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from rasterio.windows import Window

from dial_core.app.classes import ClassTable
from dial_core.atomic import atomic_path
from dial_core.data.adapters._raster import probe, read_bands, read_rgb, rgb_bands
from dial_core.errors import DataError

BLOCK = 256  # GeoTIFF tile side: windowed reads (a GIS, a tile server) touch only what they show


@dataclass(frozen=True)
class GeoImage:
    """An RGB image and its grid (``transform`` / ``crs`` None when the file has none)."""

    pixels: np.ndarray  # (H, W, 3) uint8
    transform: Affine | None
    crs: CRS | None
    path: Path

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]

    @property
    def georeferenced(self) -> bool:
        return self.transform is not None


def read_image(path: str | Path, bands: list[int] | None = None) -> GeoImage:
    """The RGB pixels and grid of ``path``; ``bands`` (1-based) picks R, G, B of a multi-band image.
    A missing or unreadable file, a non-8-bit image or an ambiguous band count is a DataError that
    names the file and the fix."""
    meta = probe(Path(path), "image")
    chosen = None if meta.palette and bands is None else rgb_bands(meta, bands, "--bands")
    pixels = read_rgb(meta, Window(0, 0, meta.width, meta.height), bands=chosen)
    return GeoImage(np.ascontiguousarray(pixels), meta.transform, meta.crs, Path(path))


def read_label(path: str | Path, shape: tuple[int, int], n_classes: int, ignore_index: int = 255) -> np.ndarray:
    """The class indices (H, W) uint8 of a label raster on the image's grid (``dial serve --labels``:
    live mIoU); ``ignore_index`` marks unlabelled pixels. A DataError names the file and what is wrong."""
    meta = probe(Path(path), "label raster")
    if meta.count != 1 or meta.dtype != "uint8":
        raise DataError(f"{path}: a label raster is one uint8 band of class indices ({ignore_index} = ignore); this "
                        f"file has {meta.count} band(s) of {meta.dtype}")
    if meta.shape != tuple(shape):
        raise DataError(f"{path}: the labels are {meta.height}×{meta.width} px but the image is {shape[0]}×{shape[1]}; "
                        "give the label raster of this image")
    label = read_bands(meta, Window(0, 0, meta.width, meta.height), [1])[0]
    bad = (label >= n_classes) & (label != ignore_index)
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} pixels hold class values ({', '.join(map(str, np.unique(label[bad])[:8]))}) "
                        f"outside 0..{n_classes - 1} (and {ignore_index} = ignore) of the model's classes")
    return np.ascontiguousarray(label)


def _profile(image: GeoImage, dtype: str, **extra) -> dict:
    height, width = image.shape
    profile = {"driver": "GTiff", "height": height, "width": width, "count": 1, "dtype": dtype,
               "compress": "deflate", **extra}
    if height >= BLOCK and width >= BLOCK:
        profile.update(tiled=True, blockxsize=BLOCK, blockysize=BLOCK)
    if image.transform is not None:
        profile["transform"] = image.transform
    if image.crs is not None:
        profile["crs"] = image.crs
    return profile


def _open_for_writing(tmp: Path, profile: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # an image without a grid: none on purpose
        return rasterio.open(tmp, "w", **profile)


def write_class_map(path: str | Path, classes: np.ndarray, table: ClassTable, image: GeoImage) -> None:
    """``classes`` (H, W) class indices as a uint8 GeoTIFF on ``image``'s grid, coloured and named by ``table``."""
    if classes.shape != image.shape:
        raise ValueError(f"class map {classes.shape} is not on the image's grid {image.shape}")
    if len(table) > 255:
        raise ValueError(f"{len(table)} classes do not fit a uint8 class map")
    with atomic_path(path) as tmp, _open_for_writing(tmp, _profile(image, "uint8")) as dst:
        dst.write(classes.astype(np.uint8), 1)
        dst.write_colormap(1, table.colormap())
        dst.set_band_description(1, f"class ({table.describe()})")
        dst.update_tags(CLASS_NAMES=json.dumps(list(table.names)), SOURCE_IMAGE=image.path.name)
        dst.update_tags(1, **{f"CLASS_{i}": name for i, name in enumerate(table.names)})


def write_float_map(path: str | Path, values: np.ndarray, image: GeoImage, description: str) -> None:
    """A float32 map (an acquisition's uncertainty) on ``image``'s grid, its band named ``description``."""
    if values.shape != image.shape:
        raise ValueError(f"map {values.shape} is not on the image's grid {image.shape}")
    with atomic_path(path) as tmp, _open_for_writing(tmp, _profile(image, "float32", predictor=3)) as dst:
        dst.write(values.astype(np.float32), 1)
        dst.set_band_description(1, description)
        dst.update_tags(SOURCE_IMAGE=image.path.name)
