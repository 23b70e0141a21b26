"""Which validation images the simulated evaluations run on: all of them, or a seeded selection of
``evaluation.max_images`` for large folders. The selection is written to a file the evaluation rules
read, so every table of a run is computed on the same, recorded images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dial_core.errors import ConfigError


def select_images(val_ids: Sequence[str], max_images: int | None, seed: int) -> dict:
    """``{seed, max_images, n_val, images}``, ``images`` in the order of ``val_ids``.

    ``None`` (or at least as many as there are) keeps every image. Otherwise the first
    ``max_images`` of one permutation drawn with ``seed``: a larger ``max_images`` extends the
    selection (nested subsets) instead of drawing a new one.
    """
    ids = list(val_ids)
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise ConfigError(f"evaluation.max_images = {max_images!r}: use null (every validation image) or an integer >= 1")
    if max_images is None or max_images >= len(ids):
        positions = list(range(len(ids)))
    else:
        order = np.random.default_rng(seed).permutation(len(ids))
        positions = sorted(int(i) for i in order[:max_images])
    return {"seed": seed, "max_images": max_images, "n_val": len(ids), "images": [ids[i] for i in positions]}
