"""Seeded train/validation split of the training pool (the papers' 80/20)."""

from __future__ import annotations

import numpy as np

from dial_core.errors import ConfigError


def split_train_val(image_ids: list[str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Shuffle ``image_ids`` with ``seed`` and hold out n · val_fraction rounded half up (at least one).

    Sorting first makes the split independent of the order the adapter listed the files in.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"split.val_fraction = {val_fraction}: must lie strictly between 0 and 1")
    ids = sorted(image_ids)
    if len(ids) < 2:
        raise ConfigError(f"a split needs at least 2 images, the dataset has {len(ids)}; generate more images")
    n_val = min(max(1, int(np.floor(len(ids) * val_fraction + 0.5))), len(ids) - 1)  # half rounds up
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return {"train": train, "val": val}


def nested_subset(train_ids: list[str], fraction: float, seed: int) -> list[str]:
    """First ``ceil(fraction * n)`` images of one seeded permutation: subsets are nested."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"training-size fraction {fraction}: must lie in (0, 1]")
    ids = sorted(train_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    count = max(1, int(np.ceil(fraction * len(ids))))
    return sorted(ids[i] for i in order[:count])


def make_split(groups: dict[str, list[str]], mode: str, val_fraction: float, seed: int) -> dict[str, list[str]]:
    """``random``: seeded 80/20 of ``groups['train']`` (the papers' protocol; Potsdam 24 → 19/5).
    ``predefined``: the adapter's own train/val groups (INRIA cities 1–5, AIRS train/val).
    Other groups (e.g. Potsdam's official ``test`` tiles) are carried along unchanged."""
    if "train" not in groups:
        raise ConfigError(f"the dataset offers no 'train' group (groups: {', '.join(groups) or 'none'})")
    extra = {k: v for k, v in groups.items() if k not in ("train", "val")}
    if mode == "random":
        return {**split_train_val(groups["train"], val_fraction, seed), **extra}
    if mode == "predefined":
        if not groups.get("val"):
            raise ConfigError("split.mode = predefined, but the dataset has no predefined 'val' group; use split.mode: random")
        return {"train": sorted(groups["train"]), "val": sorted(groups["val"]), **extra}
    raise ConfigError(f"split.mode = {mode!r}: choose random or predefined")
