"""256² PNG tiles of the page's layers: the image, the prediction, the uncertainty heat map, the labels.

Zoom scheme (the serve contract): ``max_zoom`` Z = max(0, ceil(log2(max(H, W) / 256))); at zoom z one
tile pixel covers 2^(Z−z) image pixels and tile (x, y) covers cols [x·256·2^(Z−z), (x+1)·256·2^(Z−z)),
rows likewise. Tiles partly outside the image are transparent there; wholly outside is
:class:`TileNotFound`.

Why a pyramid for the image: a zoom-0 tile of a 6000² scene covers the whole image, and averaging
36 M pixels per request would take a second. The image is downsampled by 2 once per level at start
(area mean; an odd last row / column averages the pixels there are), so every image tile is one slice.
Class and uncertainty layers change with every click, so they are sampled (nearest: the pixel at the
centre of each tile pixel's block) from the full-resolution maps per request, a strided slice.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

TILE = 256
LAYERS = ("image", "prediction", "uncertainty", "labels")
HEAT_COLORMAP = "inferno"


class TileNotFound(LookupError):
    """A tile outside the image or the zoom levels, or a layer this session does not have."""


def max_zoom(height: int, width: int) -> int:
    return max(0, math.ceil(math.log2(max(height, width) / TILE)))


def _halve(level: np.ndarray) -> np.ndarray:
    """Area mean over 2×2 blocks (float32 (h, w, 3)); an odd edge is padded by itself, so the last
    row / column averages only the pixels it has."""
    h, w = level.shape[:2]
    if h % 2 or w % 2:
        level = np.pad(level, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return 0.25 * (level[0::2, 0::2] + level[1::2, 0::2] + level[0::2, 1::2] + level[1::2, 1::2])


def image_pyramid(pixels: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` + 1 RGB uint8 arrays: the image, then halved ``levels`` times (area mean)."""
    pyramid = [pixels]
    current = pixels.astype(np.float32)
    for _ in range(levels):
        current = _halve(current)
        pyramid.append(np.clip(np.rint(current), 0, 255).astype(np.uint8))
    return pyramid


def colour_lut(colours: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """(256, 4) uint8 RGBA per class index; indices without a class (255 = ignore) are transparent."""
    lut = np.zeros((256, 4), np.uint8)
    for i, colour in enumerate(colours):
        lut[i] = (*colour, 255)
    return lut


def heat_lut(name: str = HEAT_COLORMAP) -> np.ndarray:
    """(256, 4) uint8 RGBA of a matplotlib colour map, low → high uncertainty."""
    from matplotlib import colormaps

    return np.round(colormaps[name](np.linspace(0, 1, 256)) * 255).astype(np.uint8)


def encode_png(rgba: np.ndarray) -> bytes:
    """A (256, 256, 4) uint8 tile as PNG (zlib level 1: tiles are made per request, size matters less)."""
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG", compress_level=1)
    return out.getvalue()


class TileRenderer:
    """Tiles of one image's layers; the class / uncertainty maps are read at request time, so it
    always draws the current state (the caller holds the session's lock while it slices)."""

    def __init__(self, pixels: np.ndarray, colours: Sequence[tuple[int, int, int]]):
        self.height, self.width = pixels.shape[:2]
        self.max_zoom = max_zoom(self.height, self.width)
        self.pyramid = image_pyramid(pixels, self.max_zoom)
        self.classes_lut = colour_lut(colours)
        self.heat = heat_lut()

    def span(self, z: int, x: int, y: int) -> tuple[int, int, int, int, int]:
        """(step, row0, col0, rows, cols): image pixels per tile pixel, the tile's first image pixel
        and how many tile pixels lie inside the image; TileNotFound outside."""
        if not 0 <= z <= self.max_zoom or x < 0 or y < 0:
            raise TileNotFound(f"no tile {z}/{x}/{y}: zoom levels are 0..{self.max_zoom}")
        step = 2 ** (self.max_zoom - z)
        row0, col0 = y * TILE * step, x * TILE * step
        if row0 >= self.height or col0 >= self.width:
            raise TileNotFound(f"tile {z}/{x}/{y} lies outside the image")
        rows = min(TILE, -(-(self.height - row0) // step))
        cols = min(TILE, -(-(self.width - col0) // step))
        return step, row0, col0, rows, cols

    def _sampled(self, values: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
        """Nearest samples (rows, cols) of a full-resolution map: the centre pixel of each block (the
        last pixel of a block the image edge cuts short)."""
        step, row0, col0, rows, cols = self.span(z, x, y)
        r = np.minimum(row0 + step // 2 + step * np.arange(rows), self.height - 1)
        c = np.minimum(col0 + step // 2 + step * np.arange(cols), self.width - 1)
        return values[np.ix_(r, c)]

    def _padded(self, rgba: np.ndarray) -> np.ndarray:
        tile = np.zeros((TILE, TILE, 4), np.uint8)
        tile[: rgba.shape[0], : rgba.shape[1]] = rgba
        return tile

    def image_tile(self, z: int, x: int, y: int) -> np.ndarray:
        _, _, _, rows, cols = self.span(z, x, y)
        level = self.pyramid[self.max_zoom - z]
        rgb = level[y * TILE : y * TILE + rows, x * TILE : x * TILE + cols]
        rgba = np.empty((*rgb.shape[:2], 4), np.uint8)
        rgba[..., :3], rgba[..., 3] = rgb, 255
        return self._padded(rgba)

    def class_tile(self, classes: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
        """A class map (uint8 indices; 255 = ignore: transparent) in the class colours."""
        return self._padded(self.classes_lut[self._sampled(classes, z, x, y)])

    def heat_tile(self, values: np.ndarray, scale: float, z: int, x: int, y: int) -> np.ndarray:
        """An uncertainty map, 0 .. ``scale`` onto the heat colour map."""
        sampled = self._sampled(values, z, x, y)
        index = np.clip(sampled * (255.0 / scale), 0, 255).astype(np.uint8)
        return self._padded(self.heat[index])
