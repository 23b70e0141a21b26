"""AIRS (Aerial Imagery for Roof Segmentation, Christchurch, 7.5 cm, NZTM): roof / not roof.

Layout: ``{train,val,test}/image/<name>.tif`` and ``{train,val,test}/label/<name>.tif`` (plus
``*_vis.tif`` previews, skipped). Labels are 0 / 1 (some releases 0 / 255).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dial_core.data.adapters._raster import Sources, check_options, integer_mask_source
from dial_core.data.archives import archive_kind, extract_archive
from dial_core.data.canonical import DatasetInfo, RasterSource
from dial_core.errors import DataError

CLASSES = [{"name": "background", "color": [0, 0, 0]}, {"name": "roof", "color": [255, 255, 255]}]
SUBSETS = ("train", "val", "test")


def _dataset_root(root: Path, extract_dir: Path) -> Path:
    """The folder holding train/ val/ test/, extracting downloaded archives (zip, tar, tar.gz, ...)
    into ``extract_dir`` when that is all there is."""
    for base in (root, extract_dir):
        for candidate in [base, *sorted(p for p in base.iterdir() if p.is_dir())] if base.is_dir() else []:
            if (candidate / "train" / "image").is_dir():
                return candidate
    archives = sorted(p for p in root.iterdir() if p.is_file() and archive_kind(p) in ("zip", "tar")) \
        if root.is_dir() else []
    if archives:
        for archive in archives:
            extract_archive(archive, extract_dir)
        for candidate in [extract_dir, *sorted(p for p in extract_dir.iterdir() if p.is_dir())]:
            if (candidate / "train" / "image").is_dir():
                return candidate
    raise DataError(
        f"AIRS: no train/image folder under {root}; download AIRS (dataset.airs.downloads) "
        "or point dataset.airs.path at the extracted dataset"
    )


OPTIONS = ("path", "downloads", "subsets", "extract_dir")


def prepare(options: dict, name: str) -> tuple[DatasetInfo, Iterator[RasterSource], dict[str, list[str]]]:
    check_options(options, OPTIONS, ["path"], "dataset.airs")
    raw = Path(options["path"])
    root = _dataset_root(raw, Path(options.get("extract_dir") or raw / "extracted"))
    groups: dict[str, list[str]] = {}
    pairs = []
    for subset in options.get("subsets", list(SUBSETS)):
        folder = root / subset / "image"
        if not folder.is_dir():
            continue
        for image in sorted(p for p in folder.glob("*.tif") if not p.stem.endswith("_vis")):
            label = root / subset / "label" / image.name
            if not label.exists():
                raise DataError(f"AIRS: {image} has no label {label}")
            image_id = f"airs_{subset}_{image.stem}"
            pairs.append((image_id, image, label))
            groups.setdefault(subset, []).append(image_id)
    if not pairs:
        raise DataError(f"AIRS: no image/label pairs under {root}")
    info = DatasetInfo(
        name=name, classes=CLASSES, ground_sampling_distance_m=0.075,
        source="AIRS: Aerial Imagery for Roof Segmentation (Chen et al. 2019), Christchurch, NZTM",
        licence="CC BY 4.0 (imagery: Land Information New Zealand); cite the AIRS paper",
    )
    sources = Sources(pairs, lambda p: integer_mask_source(*p, {0: 0, 1: 1, 255: 1}, "AIRS"))
    return info, sources, groups
