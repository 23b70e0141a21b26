"""Spatial blocks: one or a few large scenes cut into non-overlapping blocks with a buffer between them.

Why: with a single scene there is nothing to split, and random crops of one scene put neighbouring
pixels on both sides of a train/validation split. Cutting each scene into ``size``² blocks with
``buffer`` pixels left out between neighbours, and splitting the blocks, keeps validation pixels
at least ``buffer`` away from any training pixel. Each block becomes one canonical image
(``<scene>_r<i>_c<j>``), so every later stage runs unchanged; the block windows are recorded in
``dataset.json`` and ``split.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from dial_core.data.canonical import RasterSource, Sample, _sample_source
from dial_core.errors import ConfigError

log = logging.getLogger(__name__)
MIN_SIDE = 32  # the networks need at least one 32-px cell


def block_windows(height: int, width: int, size: int, buffer: int) -> list[tuple[int, int, int, int, int, int]]:
    """(i, j, row_off, col_off, h, w) of the blocks of a height × width scene.

    Blocks start every ``size + buffer`` pixels; a block cut short by the scene's edge is kept when
    both its sides reach half a block (and 32 px), else its pixels are left out.
    """
    if size < MIN_SIDE or buffer < 0:
        raise ConfigError(f"split.blocks: size {size}, buffer {buffer}; need size >= {MIN_SIDE} and buffer >= 0")
    keep = max(MIN_SIDE, size // 2)

    def starts(length: int) -> list[tuple[int, int]]:
        out = []
        for offset in range(0, length, size + buffer):
            extent = min(size, length - offset)
            if extent >= keep:
                out.append((offset, extent))
        return out

    return [
        (i, j, row, col, h, w)
        for i, (row, h) in enumerate(starts(height))
        for j, (col, w) in enumerate(starts(width))
    ]


def _block_source(scene: RasterSource, block_id: str, row: int, col: int, height: int, width: int) -> RasterSource:
    def read(window: Window):
        return scene.read(Window(col + window.col_off, row + window.row_off, window.width, window.height))

    window = Window(col, row, width, height)
    transform = window_transform(window, scene.transform) if scene.transform is not None else None
    return RasterSource(block_id, height, width, read, transform, scene.crs, scene.source_files)


def cut_into_blocks(
    sources: Iterable[RasterSource | Sample], groups: dict[str, list[str]], size: int, buffer: int
) -> tuple[Iterator[RasterSource], dict[str, list[str]], dict[str, dict]]:
    """Blocks of every scene, the adapter's groups re-expressed as block ids, and the block windows.

    The groups and the window record are filled while the blocks are streamed (scenes are opened
    one at a time), so they are complete once :func:`write_dataset` has consumed the iterator —
    before it writes ``dataset.json``.
    """
    block_groups: dict[str, list[str]] = {name: [] for name in groups}
    scene_group = {image_id: name for name, ids in groups.items() for image_id in ids}
    record: dict[str, dict] = {}

    def stream() -> Iterator[RasterSource]:
        for item in sources:
            scene = _sample_source(item) if isinstance(item, Sample) else item
            windows = block_windows(scene.height, scene.width, size, buffer)
            if not windows:
                log.warning("scene %s (%d×%d) is smaller than half a block (split.blocks.size %d): left out",
                            scene.image_id, scene.height, scene.width, size)
                continue
            covered = sum(h * w for *_, h, w in windows)
            log.info("scene %s: %d blocks of up to %d², %.1f %% of its pixels (buffers and edges left out)",
                     scene.image_id, len(windows), size, 100.0 * covered / (scene.height * scene.width))
            for i, j, row, col, h, w in windows:
                block_id = f"{scene.image_id}_r{i:02d}_c{j:02d}"
                record[block_id] = {"scene": scene.image_id, "row_off": row, "col_off": col, "height": h, "width": w}
                if scene.image_id in scene_group:
                    block_groups[scene_group[scene.image_id]].append(block_id)
                yield _block_source(scene, block_id, row, col, h, w)

    return stream(), block_groups, record
