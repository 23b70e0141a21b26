"""Window index of evaluation patches: a regular grid with overlap that covers every pixel."""

from __future__ import annotations

import pandas as pd

from dial_core.errors import ConfigError

TILE_COLUMNS = ["id", "split", "row_off", "col_off", "height", "width"]


def _offsets(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    offsets = list(range(0, length - size + 1, stride))
    if offsets[-1] + size < length:  # last window flush with the border, so nothing is left out
        offsets.append(length - size)
    return offsets


def tile_windows(height: int, width: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(row_off, col_off, height, width) of ``size``² windows with ``overlap`` px between neighbours."""
    if size <= 0 or not 0 <= overlap < size:
        raise ConfigError(f"tiling: size={size}, overlap={overlap}; need size > 0 and 0 <= overlap < size")
    stride = size - overlap
    return [
        (r, c, min(size, height), min(size, width))
        for r in _offsets(height, size, stride)
        for c in _offsets(width, size, stride)
    ]


def tile_index(shapes: dict[str, tuple[int, int]], split: dict[str, list[str]], size: int, overlap: int) -> pd.DataFrame:
    """One row per window of every image of the split, in the ``tiles.csv`` layout."""
    rows = []
    for part, ids in split.items():
        for image_id in ids:
            height, width = shapes[image_id]
            for r, c, h, w in tile_windows(height, width, size, overlap):
                rows.append((image_id, part, r, c, h, w))
    return pd.DataFrame(rows, columns=TILE_COLUMNS)
