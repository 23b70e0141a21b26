"""Raster access shared by the Potsdam, Dubai and folder adapters.

Every read goes through rasterio (GeoTIFF, JPEG and PNG alike) one window at a time and turns any
GDAL failure into a :class:`DataError` that names the file, so a corrupt download reads as
"file X is corrupt" rather than a traceback from deep inside GDAL.
"""

from __future__ import annotations

import contextlib
import logging
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from dial_core.data.canonical import RasterSource
from dial_core.errors import ConfigError, DataError

RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RasterMeta:
    """Header facts of one raster file (cheap: no pixel is read)."""

    path: Path
    height: int
    width: int
    count: int
    dtype: str
    transform: Affine | None  # None when the file carries no georeferencing
    crs: CRS | None
    palette: bool  # single band with a colour table (palette PNG/TIFF)
    colorinterp: tuple[str, ...] = ()  # per band: red, green, blue, alpha, gray, undefined ...

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width


def _cause(err: BaseException) -> str:
    """GDAL puts the useful text on the chained exception ("Read failed. See previous exception")."""
    cause = err.__cause__ or err.__context__
    return f"{err} ({cause})" if cause is not None and str(cause) not in str(err) else str(err)


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[Any]:
    """rasterio.open with GDAL errors as DataError naming the file; no warning for plain JPEG/PNG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                yield src
    except DataError:
        raise
    except (RasterioError, OSError) as err:
        if not Path(path).exists():
            raise DataError(f"{what}: {path} does not exist") from None
        raise DataError(f"{what}: cannot read {path}: {_cause(err)}; the file is corrupt or truncated, obtain it again") from None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path) -> None:
    """Walk a PNG's chunks, checking CRCs and that the image data inflates to its end.

    Why: GDAL's PNG driver returns zeros for a truncated file without any error or warning, which
    would become silent class ids downstream. Streams the file; memory stays at ~1 MB.
    """
    def corrupt(why: str) -> DataError:
        return DataError(f"{path} is a corrupt or truncated PNG ({why}); obtain the file again")

    inflate = zlib.decompressobj()
    with open(path, "rb") as handle:
        if handle.read(8) != _PNG_SIGNATURE:
            return  # not a PNG after all: GDAL reports what it is not
        while True:
            head = handle.read(8)
            if len(head) < 8:
                raise corrupt("it ends before its IEND chunk")
            length, kind = struct.unpack(">I4s", head)
            body = handle.read(length)
            crc = handle.read(4)
            if len(body) < length or len(crc) < 4:
                raise corrupt(f"its {kind.decode('latin-1')} chunk is cut short")
            if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
                raise corrupt(f"checksum error in its {kind.decode('latin-1')} chunk")
            if kind == b"IDAT":
                try:
                    data = body
                    while data and not inflate.eof:
                        inflate.decompress(data, 1 << 20)
                        data = inflate.unconsumed_tail
                except zlib.error as err:
                    raise corrupt(f"bad image data: {err}") from None
            elif kind == b"IEND":
                break
    if not inflate.eof:
        raise corrupt("its image data stops early")


def probe(path: Path, what: str = "raster") -> RasterMeta:
    """Header of ``path``; DataError when it is missing, not a raster, or unreadable.

    PNGs are also checked end to end (:func:`check_png`), as GDAL does not notice truncation.
    """
    if Path(path).suffix.lower() == ".png" and Path(path).is_file():
        check_png(Path(path))
    with _opened(path, what) as src:
        georeferenced = src.crs is not None or src.transform != Affine.identity()
        palette = src.count == 1 and src.colorinterp[0] == ColorInterp.palette
        return RasterMeta(
            Path(path), src.height, src.width, src.count, src.dtypes[0],
            src.transform if georeferenced else None, src.crs, palette,
            tuple(c.name for c in src.colorinterp),
        )


def read_bands(
    meta: RasterMeta,
    window: Window,
    bands: list[int],
    out_shape: tuple[int, int] | None = None,
    resampling: Resampling = Resampling.nearest,
) -> np.ndarray:
    """(len(bands), h, w) pixels of ``window``.

    With ``out_shape`` (h, w) the window is given on the *output* grid of
    ``out_shape`` = full raster scaled, and the matching (fractional) source window is read and
    resampled by GDAL; strips read this way join seamlessly (GDAL uses pixels across the strip edge).
    """
    if out_shape is None:
        read_window, shape = window, None
    else:
        fy, fx = meta.height / out_shape[0], meta.width / out_shape[1]
        read_window = Window(window.col_off * fx, window.row_off * fy, window.width * fx, window.height * fy)
        shape = (len(bands), int(window.height), int(window.width))
    with _opened(meta.path, "raster") as src:
        try:
            if shape is None:
                return src.read(bands, window=read_window)
            return src.read(bands, window=read_window, out_shape=shape, resampling=resampling)
        except (RasterioError, OSError) as err:
            raise DataError(
                f"cannot read {meta.path} ({describe_window(window)}): {_cause(err)}; "
                "the file is corrupt or truncated, obtain it again"
            ) from None


def describe_window(window: Window) -> str:
    row, col = int(window.row_off), int(window.col_off)
    return f"rows {row}..{row + int(window.height) - 1}, columns {col}..{col + int(window.width) - 1}"


def colour_table(meta: RasterMeta) -> np.ndarray:
    """(256, 3) uint8 lookup table of a palette raster, to expand its indices to RGB."""
    with _opened(meta.path, "raster") as src:
        try:
            cmap = src.colormap(1)
        except ValueError as err:
            raise DataError(f"{meta.path}: palette image without a readable colour table ({err})") from None
    table = np.zeros((256, 3), np.uint8)
    for index, rgba in cmap.items():
        if 0 <= index < 256:
            table[index] = rgba[:3]
    return table


def check_rgb_image(meta: RasterMeta) -> None:
    if meta.dtype != "uint8":
        raise DataError(f"{meta.path} is {meta.dtype}; the canonical format needs 8-bit RGB images, convert it first")
    if meta.count < 3 and not meta.palette:
        raise DataError(
            f"{meta.path} has {meta.count} band(s); an RGB image needs 3 (a grey image can be read as RGB "
            "with dataset.folder.bands: [1, 1, 1])"
        )


def _is_mask_band(meta: RasterMeta, band: int) -> bool:
    """Whether a band holds only 0 / 255, as a real alpha band does (read at most 256² pixels).

    Why: GDAL labels the fourth band of any 4-band 8-bit GeoTIFF "alpha", near-infrared included.
    """
    shape = (min(meta.height, 256), min(meta.width, 256))
    values = read_bands(meta, Window(0, 0, meta.width, meta.height), [band], shape)
    return bool(np.isin(values, (0, 255)).all())


def rgb_bands(meta: RasterMeta, bands: list[int] | None = None, option: str = "bands") -> list[int]:
    """The three bands of ``meta`` read as R, G, B; never drops a band without saying so.

    Three bands: 1, 2, 3. Four bands whose fourth is alpha: 1, 2, 3 with a log line. Any other
    count needs ``bands`` (1-based, e.g. ``[4, 3, 2]``); without it a DataError names the file,
    its bands and the ``option`` to set.
    """
    described = ", ".join(f"{i + 1}: {c}" for i, c in enumerate(meta.colorinterp)) or f"{meta.count} bands"
    if meta.dtype != "uint8":
        raise DataError(f"{meta.path} is {meta.dtype}; the canonical format needs 8-bit images, convert it first")
    if bands is not None:
        if len(bands) != 3 or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= meta.count for b in bands):
            raise DataError(
                f"{meta.path} has {meta.count} band(s) ({described}); {option} = {list(bands)!r} must name three of "
                "them, 1-based (e.g. [1, 2, 3])"
            )
        if meta.count != 3 or list(bands) != [1, 2, 3]:
            log.info("%s: bands %s read as R, G, B (the file has %s)", meta.path, list(bands), described)
        return list(bands)
    check_rgb_image(meta)
    if meta.count == 3:
        return [1, 2, 3]
    if meta.count == 4 and meta.colorinterp[3:4] == ("alpha",) and _is_mask_band(meta, 4):
        log.info("%s: band 4 is alpha, not image data; reading bands 1-3 as R, G, B", meta.path)
        return [1, 2, 3]
    raise DataError(
        f"{meta.path} has {meta.count} bands ({described}); say which three are R, G, B with "
        f"{option}: [1, 2, 3] (1-based; e.g. [4, 3, 2] for a false-colour composite)"
    )


def read_rgb(
    meta: RasterMeta,
    window: Window,
    out_shape: tuple[int, int] | None = None,
    resampling: Resampling = Resampling.nearest,
    table: np.ndarray | None = None,
    bands: list[int] | None = None,
) -> np.ndarray:
    """(h, w, 3) uint8: ``bands`` (default :func:`rgb_bands`), or palette indices through ``table``."""
    if meta.palette and bands is None:
        if table is None:
            table = colour_table(meta)
        index = read_bands(meta, window, [1], out_shape, resampling)[0]
        return table[index]
    if bands is None:
        bands = rgb_bands(meta)
    return np.moveaxis(read_bands(meta, window, list(bands), out_shape, resampling), 0, -1)


def check_same_grid(image_id: str, image: RasterMeta, label: RasterMeta) -> None:
    """Image and label must cover the same pixels: same size, and the same georeferencing when both have it."""
    if image.shape != label.shape:
        raise DataError(
            f"image {image_id}: {image.path} is {image.height}×{image.width} (rows×columns) but its label "
            f"{label.path} is {label.height}×{label.width}; they must share one grid"
        )
    if image.transform is None or label.transform is None:
        return  # a label without georeferencing is taken to lie on its image's grid
    same_crs = image.crs is None or label.crs is None or image.crs == label.crs
    if not same_crs or not image.transform.almost_equals(label.transform, precision=1e-6):
        raise DataError(
            f"image {image_id}: {image.path} (CRS {image.crs}, transform {tuple(image.transform)[:6]}) and its label "
            f"{label.path} (CRS {label.crs}, transform {tuple(label.transform)[:6]}) are georeferenced differently; "
            "they must share one grid"
        )


class Sources(Iterator[RasterSource]):
    """A lazy stream of sources that knows its length (for progress bars); each is built on demand."""

    def __init__(self, items: Iterable[T], make: Callable[[T], RasterSource]):
        self._items = list(items)
        self._make = make
        self._iter = iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Sources:
        return self

    def __next__(self) -> RasterSource:
        return self._make(next(self._iter))


def check_options(options: dict, known: Iterable[str], required: Iterable[str], where: str) -> dict:
    """Unknown or missing adapter options fail with the key and the accepted keys."""
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: options must be a mapping, got {type(options).__name__}")
    known = tuple(known)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(known)}")
    missing = [key for key in required if options.get(key) in (None, "")]
    if missing:
        raise ConfigError(f"{where}: option(s) {', '.join(missing)} required")
    return options


_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe_id(text: str) -> str:
    """A file-name-safe image id from a file stem: other characters become ``_``."""
    cleaned = _UNSAFE.sub("_", text).strip("_.")
    return cleaned or "image"


def integer_mask_source(image_id: str, image_path: Path, mask_path: Path, mapping: dict[int, int], what: str,
                        hint: str | None = None) -> RasterSource:
    """RGB image + single-band integer mask on the same grid (INRIA 0/255, AIRS 0/1), read in windows."""
    from dial_core.data.labels import values_to_index  # local: labels imports nothing from here

    image = probe(image_path, f"{what} image {image_id}")
    mask = probe(mask_path, f"{what} mask of {image_id}")
    bands = rgb_bands(image)
    if mask.count != 1:
        raise DataError(f"{mask_path} has {mask.count} bands; {what} masks are single-band integer rasters")
    check_same_grid(image_id, image, mask)

    def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
        values = read_bands(mask, window, [1])[0]
        where = f"{mask_path} ({describe_window(window)})"
        return read_rgb(image, window, bands=bands), (values_to_index(values, mapping, where) if hint is None
                                                      else values_to_index(values, mapping, where, hint))

    return RasterSource(image_id, image.height, image.width, read, image.transform, image.crs, (image_path, mask_path))
