"""Train/validation splits: the papers' seeded 80/20, and the splits a researcher's own data needs
(a list of validation images, scene-level groups from a file-name pattern, spatial blocks)."""

from __future__ import annotations

import logging
import re
from pathlib import PurePath

import numpy as np

from dial_core.errors import ConfigError

log = logging.getLogger(__name__)

MODES = ("random", "predefined", "list", "blocks")
ONE_IMAGE_HELP = (
    "cut a large scene into spatial blocks (split.mode: blocks, split.blocks.size / buffer), list validation images "
    "(split.mode: list, split.val_list), or give a validation folder (dataset.folder.val_images, split.mode: predefined)"
)


def _n_val(n: int, val_fraction: float) -> int:
    """n · val_fraction rounded half up, at least one and leaving at least one for training."""
    return min(max(1, int(np.floor(n * val_fraction + 0.5))), n - 1)


def split_train_val(image_ids: list[str], val_fraction: float, seed: int) -> dict[str, list[str]]:
    """Shuffle ``image_ids`` with ``seed`` and hold out n · val_fraction rounded half up (at least one).

    Sorting first makes the split independent of the order the adapter listed the files in.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"split.val_fraction = {val_fraction}: must lie strictly between 0 and 1")
    ids = sorted(image_ids)
    if len(ids) < 2:
        raise ConfigError(f"a train/validation split needs at least 2 images, the dataset has {len(ids)}; {ONE_IMAGE_HELP}")
    n_val = _n_val(len(ids), val_fraction)
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


def group_key(image_id: str, pattern: str) -> str:
    """The scene an image belongs to: the first capture group of ``pattern`` (or its whole match)."""
    try:
        match = re.search(pattern, image_id)
    except re.error as err:
        raise ConfigError(f"split.group_pattern = {pattern!r} is not a regular expression ({err})") from None
    if match is None:
        raise ConfigError(
            f"split.group_pattern = {pattern!r} does not match image {image_id!r}; write a pattern every image id "
            "matches, e.g. '^(.*)_\\d+$' for <scene>_<n> (ids are file stems)"
        )
    return match.group(1) if match.re.groups else match.group(0)


def grouped_split(image_ids: list[str], val_fraction: float, seed: int, pattern: str) -> dict:
    """Seeded split of whole groups (scenes), so neighbouring chips of one scene never straddle train and val.

    Groups are drawn in a seeded order until the validation images reach n · val_fraction (rounded
    half up); at least one group stays on each side.
    """
    groups: dict[str, list[str]] = {}
    for image_id in sorted(image_ids):
        groups.setdefault(group_key(image_id, pattern), []).append(image_id)
    if len(groups) < 2:
        raise ConfigError(
            f"split.group_pattern = {pattern!r} puts all {len(image_ids)} images into one group "
            f"({next(iter(groups), '')!r}); a split needs at least 2 groups — or {ONE_IMAGE_HELP}"
        )
    keys = sorted(groups)
    target = _n_val(len(image_ids), val_fraction)
    val_keys: list[str] = []
    taken = 0
    for index in np.random.default_rng(seed).permutation(len(keys)):
        if taken >= target or len(val_keys) == len(keys) - 1:
            break
        val_keys.append(keys[index])
        taken += len(groups[keys[index]])
    val = sorted(i for k in val_keys for i in groups[k])
    train = sorted(i for k in keys if k not in val_keys for i in groups[k])
    grouping = {"pattern": pattern, "val_groups": sorted(val_keys), "train_groups": sorted(set(keys) - set(val_keys))}
    return {"train": train, "val": val, "grouping": grouping}


def listed_split(image_ids: list[str], val_names: list[str], source: str) -> dict[str, list[str]]:
    """Validation = the images named in a list (ids or file names, e.g. ``chip_03.tif``); the rest train."""
    from dial_core.data.adapters._raster import safe_id  # the ids adapters derive from file stems

    ids = set(image_ids)
    val, unknown = set(), []
    for name in val_names:
        candidates = [name, safe_id(PurePath(name).stem), safe_id(PurePath(name).name)]
        match = next((c for c in candidates if c in ids), None)
        val.add(match) if match else unknown.append(name)
    if unknown:
        raise ConfigError(
            f"{source} names {len(unknown)} image(s) the dataset does not have ({', '.join(unknown[:5])}); "
            f"known ids look like {', '.join(sorted(ids)[:3])}"
        )
    if not val:
        raise ConfigError(f"{source} names no image; list one validation image id or file name per line")
    if val == ids:
        raise ConfigError(f"{source} names every image of the dataset; leave at least one for training")
    return {"train": sorted(ids - val), "val": sorted(val)}


def make_split(
    groups: dict[str, list[str]], mode: str, val_fraction: float, seed: int, *,
    group_pattern: str | None = None, val_names: list[str] | None = None, val_list: str = "split.val_list",
) -> dict[str, list[str]]:
    """``random``: seeded 80/20 of ``groups['train']`` (the papers' protocol; Potsdam 24 → 19/5), by
    scene when ``group_pattern`` is given. ``predefined``: the adapter's own train/val groups (a
    validation folder, INRIA cities 1–5, AIRS train/val). ``list``: ``val_names`` (read from the file
    ``val_list``) are the validation images. ``blocks``: a seeded split of the spatial blocks the
    preparation cut (their ids are the images). Other groups (e.g. Potsdam's official ``test`` tiles)
    are carried along unchanged."""
    if "train" not in groups:
        raise ConfigError(f"the dataset offers no 'train' group (groups: {', '.join(groups) or 'none'})")
    extra = {k: v for k, v in groups.items() if k not in ("train", "val")}
    if group_pattern and mode != "random":
        raise ConfigError(f"split.group_pattern applies to split.mode: random only (mode is {mode}); set it to null")
    if mode != "predefined" and groups.get("val"):
        raise ConfigError(
            f"the dataset defines its own validation images ({len(groups['val'])}, e.g. dataset.folder.val_images or "
            f"inria.split: cities_1_5), but split.mode is {mode}, which would leave them out; set split.mode: predefined"
        )
    if mode in ("random", "blocks"):
        if group_pattern and mode == "random":
            return {**grouped_split(groups["train"], val_fraction, seed, group_pattern), **extra}
        return {**split_train_val(groups["train"], val_fraction, seed), **extra}
    if mode == "predefined":
        if not groups.get("val"):
            raise ConfigError(
                "split.mode = predefined, but the dataset has no predefined 'val' group (give dataset.folder.val_images, "
                "or use split.mode: random / list / blocks)"
            )
        return {"train": sorted(groups["train"]), "val": sorted(groups["val"]), **extra}
    if mode == "list":
        if val_names is None:
            raise ConfigError("split.mode = list needs split.val_list: a text file with one validation image per line")
        return {**listed_split(groups["train"], val_names, val_list), **extra}
    raise ConfigError(f"split.mode = {mode!r}: choose one of {', '.join(MODES)}")


def hold_out_calibration(split: dict[str, list[str]], count: int, seed: int, group_pattern: str | None = None) -> dict[str, list[str]]:
    """Move a seeded selection of ``count`` training images to ``calibration``: no network trains on
    them, so tuning on them (DISCA's learning rate) sees new images as the evaluation does, and never
    reads a validation image. At least one training image stays; ``count`` 0 keeps the split as is.

    With ``group_pattern`` whole scenes are held out (in a seeded order, until ``count`` images are
    reached; at least one scene stays for training), so no network trains on a neighbouring chip of
    a calibration image. A single training scene leaves nothing to hold out by scene: images are
    then drawn as without a pattern, and a warning says so."""
    if count < 0:
        raise ConfigError(f"split.calibration_images = {count}: must be 0 or more")
    train = sorted(split["train"])
    count = min(count, len(train) - 1)
    if count <= 0:
        return {**split, "calibration": []}
    rng = np.random.default_rng([seed, 8])
    groups: dict[str, list[str]] = {}
    for image_id in train:
        groups.setdefault(group_key(image_id, group_pattern) if group_pattern else image_id, []).append(image_id)
    if group_pattern and len(groups) < 2:
        log.warning("split.calibration_images: all %d training images are one scene of split.group_pattern %r; "
                    "the calibration images are drawn from it and share their scene with the training images",
                    len(train), group_pattern)
        groups = {i: [i] for i in train}
    keys = sorted(groups)
    held: list[str] = []
    for index in rng.permutation(len(keys)):
        if len(held) >= count:
            break
        if len(held) + len(groups[keys[index]]) <= len(train) - 1:  # at least one training image stays
            held += groups[keys[index]]
    held_set = set(held)
    return {**split, "train": [i for i in train if i not in held_set], "calibration": sorted(held_set)}


def read_name_list(text: str) -> list[str]:
    """Names from a list file: one per line, blank lines and ``#`` comments ignored."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]
