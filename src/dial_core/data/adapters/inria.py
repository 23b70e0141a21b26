"""INRIA Aerial Image Labeling: 180 labelled 5000×5000 GeoTIFFs (0.3 m) of five cities.

Raw layout (REFERENCE-NOTES): the multi-part archive ``aerialimagelabeling.7z.001`` … ``.005``
holds ``NEW2-AerialImageDataset.zip``, which holds ``AerialImageDataset/train/{images,gt}/<city><n>.tif``.
Ground truth is 0 / 255 → background / building. Test labels are withheld, so only train is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from dial_core.data.adapters._raster import Sources, check_options, integer_mask_source
from dial_core.data.archives import extract_multipart_7z, safe_extract_zip
from dial_core.data.canonical import DatasetInfo, RasterSource
from dial_core.errors import ConfigError, DataError

CITIES = ("austin", "chicago", "kitsap", "tyrol-w", "vienna")
CLASSES = [{"name": "background", "color": [0, 0, 0]}, {"name": "building", "color": [255, 255, 255]}]
INNER_ZIP = "NEW2-AerialImageDataset.zip"
_NAME = re.compile(r"^(?P<city>[a-z-]+)(?P<n>\d+)\.tif$")


def _train_folder(root: Path, extract_dir: Path) -> Path:
    """The extracted ``train`` folder (under ``root`` or ``extract_dir``), extracting the archives
    found under ``root`` into ``extract_dir`` if needed (the raw folder stays as downloaded)."""
    for base in (root, extract_dir):
        for candidate in (base / "AerialImageDataset" / "train", base / "train"):
            if (candidate / "images").is_dir():
                return candidate
    inner = next((p for p in (root / INNER_ZIP, extract_dir / INNER_ZIP) if p.exists()), None)
    if inner is None:
        parts = sorted(root.glob("aerialimagelabeling.7z.[0-9][0-9][0-9]"))
        if not parts:
            raise DataError(
                f"INRIA: neither AerialImageDataset/train nor aerialimagelabeling.7z.001… found in {root}; "
                "run the download rule (dataset.inria.downloads) or put the extracted dataset there"
            )
        extract_multipart_7z(parts, extract_dir, members=[INNER_ZIP])
        inner = extract_dir / INNER_ZIP
    safe_extract_zip(inner, extract_dir)
    train = extract_dir / "AerialImageDataset" / "train"
    if not (train / "images").is_dir():
        raise DataError(f"INRIA: {inner} did not contain AerialImageDataset/train/images; the archive is not the INRIA release")
    return train


def split_groups(ids: list[str], scheme: str) -> dict[str, list[str]]:
    """``random``: every tile is a training candidate (the papers' seeded 80/20 follows);
    ``cities_1_5``: tiles 1–5 of each city are validation, the common alternative."""
    if scheme == "random":
        return {"train": ids}
    if scheme == "cities_1_5":
        val = [i for i in ids if int(_NAME.match(f"{i.removeprefix('inria_')}.tif")["n"]) <= 5]
        return {"train": [i for i in ids if i not in val], "val": val}
    raise ConfigError(f"dataset.inria.split = {scheme!r}: choose random or cities_1_5")


OPTIONS = ("path", "downloads", "split", "extract_dir")


def prepare(options: dict, name: str) -> tuple[DatasetInfo, Iterator[RasterSource], dict[str, list[str]]]:
    check_options(options, OPTIONS, ["path"], "dataset.inria")
    root = Path(options["path"])
    train = _train_folder(root, Path(options.get("extract_dir") or root / "extracted"))
    images = sorted(p for p in (train / "images").glob("*.tif") if _NAME.match(p.name))
    if not images:
        raise DataError(f"INRIA: no <city><n>.tif images in {train / 'images'}")
    pairs = []
    for image in images:
        gt = train / "gt" / image.name
        if not gt.exists():
            raise DataError(f"INRIA: {image} has no ground truth {gt}")
        pairs.append((f"inria_{image.stem}", image, gt))
    info = DatasetInfo(
        name=name, classes=CLASSES, ground_sampling_distance_m=0.3,
        source="INRIA Aerial Image Labeling Dataset (Maggiori et al. 2017), train split",
        licence="research use; see https://project.inria.fr/aerialimagelabeling/ (cite the dataset paper)",
    )
    sources = Sources(pairs, lambda p: integer_mask_source(*p, {0: 0, 255: 1}, "INRIA"))
    return info, sources, split_groups([p[0] for p in pairs], options.get("split", "random"))
