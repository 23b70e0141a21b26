"""Window index of evaluation patches: a regular grid with overlap that covers every pixel; and the
fit of a configured window (training crop, inference window) to images smaller than it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pandas as pd

from dial_core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SIZE_MULTIPLE = 32  # as models.segmenter.SIZE_MULTIPLE (not imported: no torch here); LinkNet needs it
_LISTED = 8  # images named in a message; the rest are counted

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


def _listing(sides: Mapping[str, tuple[int, int]], ids: list[str]) -> str:
    named = ", ".join(f"{i} ({sides[i][0]}×{sides[i][1]})" for i in ids[:_LISTED])
    return named + (f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")


def fit_window(requested: int, sides: Mapping[str, tuple[int, int]], what: str) -> int:
    """The square window (training crop or inference window) actually used on images of ``sides``
    (id → (height, width)): ``requested`` when every image is at least that large — results stay
    identical — otherwise the largest multiple of 32 that fits the smallest side, with a warning
    naming the images, so no computation is spent on padding. ``what`` names the setting.

    An image under 32 px on a side is a :class:`DataError`: no network here can take it.
    """
    tiny = sorted((i for i, (h, w) in sides.items() if min(h, w) < SIZE_MULTIPLE), key=lambda i: min(sides[i]))
    if tiny:
        raise DataError(
            f"{len(tiny)} image(s) smaller than {SIZE_MULTIPLE} px on a side, the least the networks take "
            f"(sides must be multiples of {SIZE_MULTIPLE}): {_listing(sides, tiny)}; "
            "remove them from the dataset folder or merge them into larger images"
        )
    small = sorted((i for i, (h, w) in sides.items() if min(h, w) < requested), key=lambda i: (min(sides[i]), i))
    if not small:
        return requested
    smallest = min(sides[small[0]])
    window = smallest // SIZE_MULTIPLE * SIZE_MULTIPLE
    log.warning(
        "%s = %d px does not fit %d of %d images (height×width): %s; using %d px instead, the largest multiple "
        "of %d that fits the smallest side (%d px), so no time goes into padding. Set %s to at most %d to silence this.",
        what, requested, len(small), len(sides), _listing(sides, small), window, SIZE_MULTIPLE, smallest, what, window,
    )
    return window


def fit_tiling(size: int, overlap: int, sides: Mapping[str, tuple[int, int]], what: str = "tiling.size") -> tuple[int, int]:
    """Inference window and overlap fitted to ``sides`` (see :func:`fit_window`); a clamped window
    keeps the overlap's share of the window, so the overlap stays smaller than the window."""
    window = fit_window(size, sides, what)
    return window, overlap * window // size
