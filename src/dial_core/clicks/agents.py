"""Simulated users: where the next click goes, given the current prediction and the ground truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from dial_core.clicks.types import Click

AGENTS = ("largest_mistake_centre",)


def mistake_mask(label: np.ndarray, prediction: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    return (prediction != label) & (label != ignore_index)


def largest_mistake_click(
    label: np.ndarray,
    prediction: np.ndarray,
    clicked: Sequence[Click] = (),
    ignore_index: int = 255,
) -> Click | None:
    """Click the point deepest inside the spatially largest mistake (None when there is none).

    A mistake is a connected region of wrongly predicted pixels of one ground-truth class, so the
    click carries a single class. "Deepest" is the maximum of the distance transform with the image
    border counted as boundary (as in RITM), which keeps the point inside concave regions, unlike
    a centroid. Already clicked pixels are excluded so a stubborn mistake is not clicked twice at
    the same place.
    """
    errors = mistake_mask(label, prediction, ignore_index)
    for click in clicked:
        if 0 <= click.row < errors.shape[0] and 0 <= click.col < errors.shape[1]:
            errors[click.row, click.col] = False
    if not errors.any():
        return None
    best_size, best_region = 0, None
    for cls in np.unique(label[errors]):
        components, count = ndimage.label(errors & (label == cls))
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        sizes[0] = 0
        biggest = int(sizes.argmax())
        if sizes[biggest] > best_size:
            best_size, best_region = int(sizes[biggest]), components == biggest
    padded = np.pad(best_region, 1, constant_values=False)
    depth = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
    row, col = np.unravel_index(int(depth.argmax()), depth.shape)
    return Click(int(row), int(col), int(label[row, col]))


def next_click(
    agent: str,
    label: np.ndarray,
    prediction: np.ndarray,
    clicked: Sequence[Click] = (),
    ignore_index: int = 255,
) -> Click | None:
    """Dispatch on the agent name from params."""
    if agent == "largest_mistake_centre":
        return largest_mistake_click(label, prediction, clicked, ignore_index)
    raise ValueError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}")
