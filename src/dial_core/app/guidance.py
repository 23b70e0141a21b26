"""DIAL's guidance: which patches of the image a person should look at next, most uncertain first.

The image is cut into the patch protocol's grid (``size``² windows without overlap, the last row and
column flush with the border: :func:`~dial_core.data.tiling.tile_windows`), each patch is scored by
the mean of the acquisition's pixel map inside it (:func:`~dial_core.active.acquisition.patch_scores`)
and the patches are ranked by :func:`~dial_core.active.acquisition.uncertainty_order`. The
``random`` acquisition has no map: a seeded random order, without scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dial_core.active.acquisition import patch_scores, random_order, uncertainty_order
from dial_core.data.tiling import tile_windows

Window = tuple[int, int, int, int]  # (row_off, col_off, height, width)


@dataclass(frozen=True)
class Suggestion:
    rank: int  # 1 = look here first
    window: Window
    score: float | None  # mean uncertainty in the patch; None for a random order


def suggest_patches(uncertainty: np.ndarray | None, shape: tuple[int, int], size: int, count: int,
                    rng: np.random.Generator | None = None, exclude: frozenset[int] = frozenset()) -> list[Suggestion]:
    """The ``count`` next patches of a ``shape`` image, from its (H, W) ``uncertainty`` map (None:
    random order drawn from ``rng``); ``exclude`` holds grid indices already visited."""
    windows = tile_windows(*shape, size, 0)
    if uncertainty is None:
        rng = rng if rng is not None else np.random.default_rng(0)
        order, scores = [i for i in random_order(len(windows), rng) if i not in exclude], None
    else:
        if uncertainty.shape != tuple(shape):
            raise ValueError(f"uncertainty map {uncertainty.shape} does not cover the image {tuple(shape)}")
        scores = patch_scores(uncertainty, windows)
        order = uncertainty_order(scores, exclude)
    return [Suggestion(rank, windows[i], None if scores is None else float(scores[i]))
            for rank, i in enumerate(order[:count], start=1)]
