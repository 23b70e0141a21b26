"""Dubai aerial imagery ("Semantic segmentation of aerial imagery", Humans in the Loop, CC0).

Layout: ``Tile 1`` … ``Tile 8``, each with ``images/image_part_00K.jpg`` and
``masks/image_part_00K.png`` (RGB colour masks; some tiles store palette PNGs, expanded to RGB
through their colour table). The colours are the ones measured in the masks — the
``classes.json`` shipped with the dataset does not match them (shared/datasets/dubai/README.md).
No georeferencing and no published ground resolution.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from dial_core.data.adapters._raster import (
    Sources,
    check_options,
    check_same_grid,
    colour_table,
    describe_window,
    probe,
    read_rgb,
    rgb_bands,
    safe_id,
)
from dial_core.data.canonical import DatasetInfo, RasterSource
from dial_core.data.labels import rgb_to_index
from dial_core.errors import DataError

CLASSES: list[dict] = [
    {"name": "land", "color": [132, 41, 246]},  # "Land (unpaved area)", #8429F6
    {"name": "water", "color": [226, 169, 41]},  # #E2A929
    {"name": "building", "color": [60, 16, 152]},  # #3C1098
    {"name": "vegetation", "color": [254, 221, 58]},  # #FEDD3A
    {"name": "road", "color": [110, 193, 228]},  # #6EC1E4
]
PALETTE: dict[tuple[int, int, int], int] = {
    **{tuple(c["color"]): i for i, c in enumerate(CLASSES)},
    (155, 155, 155): 255,  # Unlabeled, #9B9B9B
    (0, 0, 0): 255,  # no class
}
OPTIONS = ("path",)
HOW_TO_GET = (
    "download 'Semantic segmentation of aerial imagery' (Humans in the Loop, CC0, e.g. from Kaggle) and "
    "unpack it so that the folder holds 'Tile 1' … 'Tile 8'"
)
_TILE = re.compile(r"^Tile (\d+)$")
_PART = re.compile(r"^image_part_(\d+)$")


def _pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """(id, image, mask) of every image, in tile and part order; DataError for a missing mask."""
    tiles = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _TILE.match(p.name))),
        key=lambda item: item[0],
    )
    if not tiles:
        raise DataError(f"Dubai aerial dataset in {root}: no 'Tile N' folder found; {HOW_TO_GET}")
    pairs = []
    for number, folder in tiles:
        images, masks = folder / "images", folder / "masks"
        for sub in (images, masks):
            if not sub.is_dir():
                raise DataError(f"Dubai aerial dataset: folder {sub} is missing; {HOW_TO_GET}")
        files = sorted(p for p in images.iterdir() if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg"))
        if not files:
            raise DataError(f"Dubai aerial dataset: {images} holds no .jpg image; {HOW_TO_GET}")
        for image in files:
            mask = masks / f"{image.stem}.png"
            if not mask.is_file():
                raise DataError(f"Dubai aerial dataset: image {image} has no mask {mask}; restore it from the download")
            part = _PART.match(image.stem)
            image_id = f"tile{number}_part{int(part.group(1)):03d}" if part else f"tile{number}_{safe_id(image.stem)}"
            pairs.append((image_id, image, mask))
    return pairs


def _source(image_id: str, image_path: Path, mask_path: Path) -> RasterSource:
    image = probe(image_path, f"Dubai image {image_id}")
    mask = probe(mask_path, f"Dubai mask {image_id}")
    bands = rgb_bands(image)
    if mask.count < 3 and not mask.palette:
        raise DataError(f"{mask_path} has {mask.count} band(s) and no colour table; Dubai masks are colour images")
    check_same_grid(image_id, image, mask)
    table = colour_table(mask) if mask.palette else None
    mask_bands = None if mask.palette else rgb_bands(mask)

    def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
        rgb = read_rgb(image, window, bands=bands)
        colours = read_rgb(mask, window, table=table, bands=mask_bands)
        return rgb, rgb_to_index(colours, PALETTE, f"{mask_path} ({describe_window(window)})")

    return RasterSource(image_id, image.height, image.width, read, None, None, (image_path, mask_path))


def prepare(options: dict, name: str) -> tuple[DatasetInfo, Iterator[RasterSource], dict[str, list[str]]]:
    """Dataset description, a lazy stream of the 72 image sources, and {"train": every id}."""
    check_options(options, OPTIONS, ["path"], "dataset.dubai")
    root = Path(options["path"]).expanduser()
    if not root.is_dir():
        raise DataError(f"Dubai aerial dataset folder {root} does not exist; {HOW_TO_GET}")
    pairs = _pairs(root)
    info = DatasetInfo(
        name=name,
        classes=[dict(c, color=list(c["color"])) for c in CLASSES],
        ground_sampling_distance_m=None,
        source="Humans in the Loop, Semantic segmentation of aerial imagery (MBRSC Dubai)",
        licence="CC0 1.0 (public domain)",
    )
    groups = {"train": [image_id for image_id, _, _ in pairs]}
    return info, Sources(pairs, lambda pair: _source(*pair)), groups
