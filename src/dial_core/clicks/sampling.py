"""Training clicks drawn from the ground truth (DISIR's strategy), optionally frequency balanced.

Positions: ``inside`` (any labelled pixel), ``border`` (pixels on a class border; the click's
class is one of the classes meeting there) and ``mistake`` (pixels the network currently gets
wrong, which needs a first inference during training: DISIR's mistake-channel variant).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scipy import ndimage

from dial_core.clicks.types import Click

POSITIONS = ("inside", "border", "mistake")


def balancing_weights(class_shares: Sequence[float], enabled: bool) -> np.ndarray:
    """Per-class draw weight: 1 / share when balancing, so a rare class is clicked as often."""
    shares = np.asarray(class_shares, dtype=np.float64)
    if not enabled:
        return np.ones_like(shares)
    return np.where(shares > 0, 1.0 / np.maximum(shares, 1e-12), 0.0)


def sample_clicks(
    label: np.ndarray,
    n_clicks: int,
    class_weights: np.ndarray,
    rng: np.random.Generator,
    ignore_index: int = 255,
) -> list[Click]:
    """Draw ``n_clicks`` distinct labelled pixels with probability ∝ weight of their class."""
    flat = label.ravel()
    candidates = np.flatnonzero(flat != ignore_index)
    if n_clicks <= 0 or candidates.size == 0:
        return []
    weights = class_weights[flat[candidates]]
    total = weights.sum()
    if total <= 0:
        return []
    n = min(n_clicks, int(np.count_nonzero(weights)))
    picked = rng.choice(candidates, size=n, replace=False, p=weights / total)
    rows, cols = np.unravel_index(picked, label.shape)
    return [Click(int(r), int(c), int(flat[p])) for r, c, p in zip(rows, cols, picked)]


def border_candidates(label: np.ndarray, ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of labelled pixels next to another class, and one neighbouring class for each
    (the largest neighbour id, or the smallest when that is the pixel's own)."""
    valid = label != ignore_index
    as_int = label.astype(np.int16)
    high = ndimage.maximum_filter(np.where(valid, as_int, -1), size=3)
    low = ndimage.minimum_filter(np.where(valid, as_int, 1000), size=3)
    border = valid & ((high != as_int) | (low != as_int))
    neighbour = np.where(high != as_int, high, low)
    flat = np.flatnonzero(border)
    return flat, neighbour.ravel()[flat].astype(np.uint8)


def sample_border_clicks(label: np.ndarray, n_clicks: int, class_weights: np.ndarray, rng: np.random.Generator, ignore_index: int = 255) -> list[Click]:
    """Clicks on class borders; each carries, at random, its pixel's class or the neighbouring one."""
    flat, neighbour = border_candidates(label, ignore_index)
    if n_clicks <= 0 or flat.size == 0:
        return []
    own = label.ravel()[flat]
    cls = np.where(rng.random(flat.size) < 0.5, own, neighbour)
    weights = class_weights[cls]
    n = min(n_clicks, int(np.count_nonzero(weights)))
    if n == 0:
        return []
    picked = rng.choice(flat.size, size=n, replace=False, p=weights / weights.sum())
    rows, cols = np.unravel_index(flat[picked], label.shape)
    return [Click(int(r), int(c), int(k)) for r, c, k in zip(rows, cols, cls[picked])]


def sample_training_clicks(
    label: np.ndarray,
    class_weights: np.ndarray,
    rng: np.random.Generator,
    click_probability: float,
    max_clicks: int,
    ignore_index: int = 255,
    position: str = "inside",
    prediction: np.ndarray | None = None,
) -> list[Click]:
    """With probability ``click_probability`` draw k ~ U{1..max_clicks} clicks, else none.

    ``mistake`` clicks are drawn among the pixels where ``prediction`` differs from ``label``.
    """
    if rng.random() >= click_probability:
        return []
    k = int(rng.integers(1, max_clicks + 1))
    if position == "inside":
        return sample_clicks(label, k, class_weights, rng, ignore_index)
    if position == "border":
        return sample_border_clicks(label, k, class_weights, rng, ignore_index)
    if position == "mistake":
        if prediction is None:
            raise ValueError("mistake clicks need the current prediction")
        wrong = np.where(prediction != label, label, ignore_index).astype(label.dtype)
        return sample_clicks(wrong, k, class_weights, rng, ignore_index)
    raise ValueError(f"unknown click position {position!r}; choose one of {', '.join(POSITIONS)}")
