"""Acquisition functions: per-pixel uncertainty maps, higher = more worth annotating."""

from __future__ import annotations

import numpy as np

ACQUISITIONS = ("entropy", "confidnet", "random")


def entropy_map(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of the softmax per pixel, from (N, H, W) probabilities."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=0)


def confidnet_uncertainty(confidence: np.ndarray) -> np.ndarray:
    """ConfidNet predicts the true-class probability; uncertainty is its complement."""
    return 1.0 - confidence


def patch_scores(uncertainty: np.ndarray, windows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Mean uncertainty inside each (row, col, h, w) window (DIAL's patch score)."""
    return np.array([uncertainty[r : r + h, c : c + w].mean() for r, c, h, w in windows])


def uncertainty_order(scores: np.ndarray, exclude: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """Indices of the windows not in ``exclude``, most uncertain first (ties keep grid order)."""
    remaining = np.array([i for i in range(len(scores)) if i not in exclude], dtype=int)
    if remaining.size == 0:
        return []
    return [int(i) for i in remaining[np.argsort(-scores[remaining], kind="stable")]]


def random_order(n_windows: int, rng: np.random.Generator) -> list[int]:
    return [int(i) for i in rng.permutation(n_windows)]
