"""Cityscapes (Area Disagreement's dataset): 2048×1024 street scenes whose fine labels are mapped to
the 8 official categories, as the paper did.

Layout (REFERENCE-NOTES): ``<path>/leftImg8bit/<subset>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``
with its label ``<path>/gtFine/<subset>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png``, i.e. the
extracted ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` (free registration at
cityscapes-dataset.com; used from a local copy, never downloaded). Options: ``path`` (the folder
holding both) and ``subsets`` (default train and val: the test labels are withheld). Each subset is a
split group, for ``split.mode: predefined``. PNGs carry no georeferencing: the ground sampling
distance is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from dial_core.data.adapters._raster import Sources, check_options, integer_mask_source, safe_id
from dial_core.data.canonical import DatasetInfo, RasterSource
from dial_core.errors import ConfigError, DataError

OPTIONS = ("path", "subsets")
SUBSETS = ("train", "val", "test")
DEFAULT_SUBSETS = ["train", "val"]  # test labels are withheld (gtFine/test holds no real annotation)
WHERE = "dataset.cityscapes"
IMAGE_SUFFIX = "_leftImg8bit"
LABEL_SUFFIX = "_gtFine_labelIds"
log = logging.getLogger(__name__)

# The paper's 8 classes are Cityscapes' 8 categories (cityscapesScripts labels.py, category ids 0..7),
# in their official colours: (name, colour, the labelIds it gathers). Void is class 0, a real class
# the paper trained and scored, not ignore. The licence plate (labelId -1) belongs to vehicle, but
# label PNGs never hold it (cityscapesScripts skips negative ids: plates keep the car's id).
# Any id outside 0..33 is an error naming the file, the value and its pixel count.
CATEGORIES: tuple[tuple[str, tuple[int, int, int], range], ...] = (
    ("void", (0, 0, 0), range(7)),  # unlabeled, ego vehicle, rectification border, out of roi, static, dynamic, ground
    ("flat", (128, 64, 128), range(7, 11)),  # road, sidewalk, parking, rail track
    ("construction", (70, 70, 70), range(11, 17)),  # building, wall, fence, guard rail, bridge, tunnel
    ("object", (153, 153, 153), range(17, 21)),  # pole, polegroup, traffic light, traffic sign
    ("nature", (107, 142, 35), range(21, 23)),  # vegetation, terrain
    ("sky", (70, 130, 180), range(23, 24)),  # sky
    ("human", (220, 20, 60), range(24, 26)),  # person, rider
    ("vehicle", (0, 0, 142), range(26, 34)),  # car, truck, bus, caravan, trailer, train, motorcycle, bicycle
)
LABEL_TO_CLASS: dict[int, int] = {label: index for index, (_, _, labels) in enumerate(CATEGORIES) for label in labels}
CLASSES = [{"name": name, "color": list(colour)} for name, colour, _ in CATEGORIES]
_UNKNOWN_HINT = (
    "Cityscapes labelIds are 0..33; read the *_gtFine_labelIds.png files as released "
    "(not *_color, *_instanceIds or *_labelTrainIds), or obtain the file again"
)


def _root(options: dict) -> Path:
    """The folder holding leftImg8bit/ (and gtFine/); a ConfigError naming the option otherwise."""
    root = Path(str(options["path"])).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"{WHERE}.path: folder {root} does not exist; point it at the folder holding leftImg8bit/ and gtFine/ "
            "(default data/raw/<dataset name>)"
        )
    if not (root / "leftImg8bit").is_dir():
        nested = next((p for p in sorted(root.iterdir()) if (p / "leftImg8bit").is_dir()), None)
        hint = f"set {WHERE}.path to {nested}" if nested else (
            "extract leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip there (registration at "
            "https://www.cityscapes-dataset.com/)"
        )
        raise ConfigError(f"{WHERE}.path: {root} has no leftImg8bit/ folder; {hint}")
    return root


def _subsets(options: dict) -> list[str]:
    subsets = options.get("subsets", DEFAULT_SUBSETS)
    if not isinstance(subsets, list) or not subsets or any(s not in SUBSETS for s in subsets) or len(set(subsets)) < len(subsets):
        raise ConfigError(f"{WHERE}.subsets = {subsets!r}: give a list of distinct subsets from {', '.join(SUBSETS)}")
    if "test" in subsets:
        log.warning("%s.subsets includes test: Cityscapes withholds its test labels, so those images carry no real annotation", WHERE)
    return subsets


def _pairs(root: Path, subsets: list[str]) -> tuple[list[tuple[str, Path, Path]], dict[str, list[str]]]:
    """(id, image, label) for every image of ``subsets``, and the ids of each subset (its split group)."""
    pairs: list[tuple[str, Path, Path]] = []
    groups: dict[str, list[str]] = {}
    seen: dict[str, Path] = {}
    for subset in subsets:
        folder = root / "leftImg8bit" / subset
        if not folder.is_dir():
            raise DataError(f"{WHERE}.subsets names {subset!r} but {folder} does not exist; extract it or leave {subset} out")
        for image in sorted(folder.glob(f"*/*{IMAGE_SUFFIX}.png")):
            stem = image.name.removesuffix(f"{IMAGE_SUFFIX}.png")
            label = root / "gtFine" / subset / image.parent.name / f"{stem}{LABEL_SUFFIX}.png"
            if not label.is_file():
                raise DataError(
                    f"Cityscapes image {image} has no label: expected {label}; extract gtFine_trainvaltest.zip into "
                    f"{root}, or remove {image}"
                )
            image_id = safe_id(stem)
            if image_id in seen:
                raise DataError(f"{image} and {seen[image_id]} both give image id {image_id!r}; keep one")
            seen[image_id] = image
            pairs.append((image_id, image, label))
            groups.setdefault(subset, []).append(image_id)
    if not pairs:
        raise DataError(
            f"Cityscapes: no <city>/*{IMAGE_SUFFIX}.png under {root / 'leftImg8bit'}/{{{','.join(subsets)}}}; "
            f"check {WHERE}.path and {WHERE}.subsets"
        )
    return pairs, groups


def _source(image_id: str, image_path: Path, label_path: Path) -> RasterSource:
    """RGB image + labelIds mapped to categories, window by window (unknown ids: DataError with counts)."""
    return integer_mask_source(image_id, image_path, label_path, LABEL_TO_CLASS, "Cityscapes", _UNKNOWN_HINT)


def prepare(options: dict, name: str) -> tuple[DatasetInfo, Iterator[RasterSource], dict[str, list[str]]]:
    check_options(options, OPTIONS, ["path"], WHERE)
    root, subsets = _root(options), _subsets(options)
    pairs, groups = _pairs(root, subsets)
    info = DatasetInfo(
        name=name, classes=CLASSES, ground_sampling_distance_m=None,
        source=(
            f"Cityscapes (Cordts et al. 2016), fine annotations, subsets {', '.join(subsets)} of {root}; "
            "labelIds mapped to the 8 categories"
        ),
        licence=(
            "Cityscapes licence: custom, non-commercial research and teaching only, no redistribution; "
            "see https://www.cityscapes-dataset.com/license/"
        ),
    )
    return info, Sources(pairs, lambda pair: _source(*pair)), groups
