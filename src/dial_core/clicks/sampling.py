"""Training clicks drawn from the ground truth (DISIR's strategy), optionally frequency balanced."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dial_core.clicks.types import Click


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


def sample_training_clicks(
    label: np.ndarray,
    class_weights: np.ndarray,
    rng: np.random.Generator,
    click_probability: float,
    max_clicks: int,
    ignore_index: int = 255,
) -> list[Click]:
    """With probability ``click_probability`` draw k ~ U{1..max_clicks} clicks, else none."""
    if rng.random() >= click_probability:
        return []
    k = int(rng.integers(1, max_clicks + 1))
    return sample_clicks(label, k, class_weights, rng, ignore_index)
