"""Strict conversion of source label encodings (colours, integer codes) to canonical class ids.

Why strict: a colour or value that the palette does not know is usually a wrong palette, a lossy
(JPEG) mask or a corrupt file. Mapping it silently to class 0 would poison training and every
metric without a trace, so it is an error that names the file, each unknown colour and how many
pixels carry it (DESIGN.md §3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from dial_core.errors import ConfigError, DataError

IGNORE_INDEX = 255
MAX_LISTED = 5  # unknown colours/values listed in an error message, the most frequent first
HINT = "add it to the palette or map it to ignore (255)"

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def hex_to_rgb(code: str) -> tuple[int, int, int]:
    """``"#8429F6"`` (or ``"8429f6"``, ``"#fff"``) -> ``(132, 41, 246)``."""
    match = _HEX.match(str(code).strip())
    if not match:
        raise ConfigError(f"colour {code!r} is not a hex colour; write it as #RRGGBB, e.g. #8429F6")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def rgb_to_hex(rgb: tuple[int, int, int]) -> str:
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02X}{g:02X}{b:02X}"


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) int32 with r << 16 | g << 8 | b: one integer key per colour."""
    packed = rgb[..., 0].astype(np.int32)  # channel by channel: no (h, w, 3) int32 copy of a big block
    packed <<= 8
    packed |= rgb[..., 1]
    packed <<= 8
    packed |= rgb[..., 2]
    return packed


def _unpack(key: int) -> tuple[int, int, int]:
    key = int(key)
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def _check_target(kind: str, key, target) -> int:
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) <= 255:
        raise ConfigError(f"{kind} {key} maps to {target!r}; a class id must be an integer 0..254, or 255 (ignore)")
    return int(target)


def _lookup(keys: np.ndarray, table_keys: np.ndarray, table_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised dictionary lookup: (mapped values, mask of keys found in the table)."""
    pos = np.searchsorted(table_keys, keys)
    pos = np.minimum(pos, len(table_keys) - 1)
    found = table_keys[pos] == keys
    return table_values[pos], found


def _unknown_report(unknown: np.ndarray, describe, noun: str, table: str) -> str:
    values, counts = np.unique(unknown, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    listed = [f"{describe(values[i])}: {int(counts[i])} pixels" for i in order[:MAX_LISTED]]
    more = ""
    if len(values) > MAX_LISTED:
        rest = order[MAX_LISTED:]
        more = f"; and {len(rest)} more {noun}s on {int(counts[rest].sum())} pixels"
    return f"{len(values)} {noun}(s) not in the {table} ({'; '.join(listed)}{more})"


def rgb_to_index(rgb: np.ndarray, palette: Mapping[tuple[int, int, int], int], where: str) -> np.ndarray:
    """(h, w, 3) uint8 colour mask -> (h, w) uint8 class ids through ``palette`` (colour -> id or 255).

    ``where`` names the source (file, window) in the error raised for a colour not in the palette.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DataError(f"{where}: a colour mask needs 3 bands (h, w, 3), got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise DataError(f"{where}: a colour mask must be 8-bit (uint8), got {rgb.dtype}")
    if not palette:
        raise ConfigError(f"{where}: the colour palette is empty; give at least one class colour")
    items = []
    for colour, target in palette.items():
        colour = tuple(int(v) for v in colour)
        if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
            raise ConfigError(f"palette colour {colour!r} is not an (r, g, b) triple of 0..255")
        items.append((_pack(np.array(colour, np.uint8)).item(), _check_target("colour", colour, target)))
    items.sort()
    table_keys = np.array([k for k, _ in items], dtype=np.int32)
    table_values = np.array([v for _, v in items], dtype=np.uint8)
    keys = _pack(rgb)
    index, found = _lookup(keys, table_keys, table_values)
    if not found.all():
        report = _unknown_report(keys[~found], lambda k: f"RGB {_unpack(k)} {rgb_to_hex(_unpack(k))}", "colour", "palette")
        raise DataError(f"{where}: {report}; {HINT}")
    return index


def values_to_index(values: np.ndarray, mapping: Mapping[int, int], where: str, hint: str = HINT) -> np.ndarray:
    """(h, w) integer mask -> (h, w) uint8 class ids through ``mapping`` (value -> id or 255).

    E.g. INRIA's 0/255 masks with ``{0: 0, 255: 1}``. ``hint`` ends the error for unknown values.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise DataError(f"{where}: an integer mask needs one band (h, w), got shape {values.shape}")
    if not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{where}: an integer mask must have an integer type, got {values.dtype}")
    if not mapping:
        raise ConfigError(f"{where}: the value mapping is empty; give at least one class value")
    items = []
    for value, target in mapping.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"mask value {value!r} is not an integer")
        items.append((int(value), _check_target("mask value", value, target)))
    items.sort()
    table_keys = np.array([k for k, _ in items], dtype=np.int64)
    table_values = np.array([v for _, v in items], dtype=np.uint8)
    keys = values.astype(np.int64, copy=False)
    index, found = _lookup(keys, table_keys, table_values)
    if not found.all():
        report = _unknown_report(keys[~found], lambda v: f"value {int(v)}", "value", "value mapping")
        raise DataError(f"{where}: {report}; {hint}")
    return index
