"""Shared by the tests of the `dial` command line: a generated georeferenced scene and a briefly
trained network saved in the workflow's checkpoint format (imported: ``from cli_support import ...``)."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from conftest import briefly_pretrained, toy_scene

CLASSES = [{"name": "soil", "color": [200, 60, 60]}, {"name": "crop", "color": [60, 200, 60]},
           {"name": "water", "color": [60, 60, 200]}]
NAMES = [c["name"] for c in CLASSES]
SIZE = 256
CRS_UTM = CRS.from_epsg(32631)
GSD = 0.5
TRANSFORM = from_origin(500000.0, 4650000.0, GSD, GSD)


@functools.lru_cache(maxsize=1)
def trained_state() -> dict:
    """The checkpoint payload of a LinkNet-R18 after one short epoch on toy scenes (cached: trained once)."""
    import torch

    from dial_core.models.segmenter import segmenter_state

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = briefly_pretrained([toy_scene(rng) for _ in range(3)], len(CLASSES))
    return segmenter_state(model, CLASSES)


def save_model(path: Path, classes: bool = True) -> Path:
    """The trained network as a checkpoint at ``path`` (with or without its class list)."""
    from dial_core.models.checkpoint import save_checkpoint

    payload = dict(trained_state())
    if not classes:
        payload.pop("classes")
    save_checkpoint(path, payload)
    return path


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A SIZE² image (H, W, 3) and its label, the same every call."""
    return toy_scene(np.random.default_rng(7), size=SIZE)


def write_scene(path: Path, georeferenced: bool = True) -> Path:
    """The scene as an RGB GeoTIFF in EPSG:32631 at 0.5 m (or without any georeference)."""
    image, _ = scene()
    profile = {"driver": "GTiff", "height": SIZE, "width": SIZE, "count": 3, "dtype": "uint8"}
    if georeferenced:
        profile.update(crs=CRS_UTM, transform=TRANSFORM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the plain scene: no grid, on purpose
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.moveaxis(image, -1, 0))
    return path


def write_dataset_json(path: Path, classes: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": "toy", "classes": classes}))
    return path


def click_features(points: list[tuple[float, float, object]]) -> list[dict]:
    return [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": {"class": cls}}
            for x, y, cls in points]


def write_clicks(path: Path, points: list[tuple[float, float, object]], crs: str | None = None) -> Path:
    """A click log: ``points`` (x, y, class) in pixel coordinates, or in ``crs`` map coordinates."""
    obj: dict = {"type": "FeatureCollection", "features": click_features(points)}
    if crs is not None:
        obj["crs"] = {"type": "name", "properties": {"name": crs}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def map_xy(col: float, row: float) -> tuple[float, float]:
    """Map coordinates of the centre of pixel (col, row) of the scene."""
    x, y = TRANSFORM * (col + 0.5, row + 0.5)
    return float(x), float(y)
