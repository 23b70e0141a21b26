"""Dataset adapters: each turns one source layout into canonical :class:`RasterSource` items.

Every adapter module exposes ``prepare(options, name) -> (DatasetInfo, Iterator[RasterSource],
groups)``: the dataset description, a lazy stream of sources (nothing is read before
:func:`dial_core.data.canonical.write_dataset` asks for it, window by window), and the predefined
split groups the adapter knows, e.g. ``{"train": [...], "test": [...]}`` (image ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dial_core.data import synthetic_adapter
from dial_core.data.adapters import airs, dubai, folder, inria, potsdam
from dial_core.data.canonical import DatasetInfo, RasterSource
from dial_core.errors import ConfigError

Prepared = tuple[DatasetInfo, Iterator[RasterSource], dict[str, list[str]]]

ADAPTERS: dict[str, Callable[[dict, str], Prepared]] = {
    "synthetic": synthetic_adapter.prepare,
    "inria": inria.prepare,
    "airs": airs.prepare,
    "potsdam": potsdam.prepare,
    "dubai": dubai.prepare,
    "folder": folder.prepare,
}


def prepare_dataset(adapter: str, options: dict, name: str) -> Prepared:
    """Run the adapter called ``adapter`` on ``options``; ConfigError naming the known ones otherwise."""
    try:
        prepare = ADAPTERS[adapter]
    except (KeyError, TypeError):
        raise ConfigError(f"dataset adapter {adapter!r} is unknown; choose one of {', '.join(sorted(ADAPTERS))}") from None
    return prepare(options or {}, name)
