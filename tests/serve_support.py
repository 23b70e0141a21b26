"""Shared by the tests of ``dial serve``: a session over the command-line tests' scene and network
(imported: ``from serve_support import ...``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cli_support import CLASSES, scene, trained_state, write_scene
from dial_core.clicks.types import Click

WINDOW, OVERLAP, DISCA_WINDOW, SEED = 128, 32, 128, 3
PIXELS = [(30, 40), (60, 200), (220, 120), (240, 230)]  # (row, col) of the clicks


def disca_config():
    from dial_core.interactive.disca import DiscaConfig

    return DiscaConfig(1e-4, 2, 1.0, 0.5, "initial")  # a drop probability that draws from the seeded stream


def model():
    from dial_core.models.segmenter import segmenter_from_state

    return segmenter_from_state(trained_state())


def table():
    from dial_core.app.classes import ClassTable

    return ClassTable.from_entries(CLASSES, "the test network")


def clicks() -> list[Click]:
    """One click per position with the true class there."""
    label = scene()[1]
    return [Click(row, col, int(label[row, col])) for row, col in PIXELS]


def make_session(folder: Path, state: str | None = "state", labels: bool = True, net=None, image_name: str = "scene.tif",
                 disca: bool = True):
    """A session on the scene written as a GeoTIFF in ``folder`` (the file is reused when there)."""
    from dial_core.app.raster import read_image
    from dial_core.app.session import AnnotationSession, SessionConfig

    path = folder / image_name
    if not path.exists():
        write_scene(path)
    config = SessionConfig(WINDOW, OVERLAP, "entropy", 64, disca_config() if disca else None, DISCA_WINDOW, SEED)
    label = scene()[1] if labels else None
    return AnnotationSession(read_image(path), net or model(), table(), config, label,
                             None if state is None else folder / state)


def full_scores(session) -> tuple[float, np.ndarray]:
    from dial_core.evaluation.metrics import segmentation_scores

    scores = segmentation_scores(scene()[1], session.predictor.prediction, len(CLASSES))
    return scores["miou"], scores["iou"]
