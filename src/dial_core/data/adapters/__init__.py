"""Dataset adapters: each turns one source layout into canonical :class:`RasterSource` items.

Every adapter module exposes ``prepare(options, name) -> (DatasetInfo, Iterator[RasterSource],
groups)``: the dataset description, a lazy stream of sources (nothing is read before
:func:`dial_core.data.canonical.write_dataset` asks for it, window by window), and the predefined
split groups the adapter knows, e.g. ``{"train": [...], "test": [...]}`` (image ids).

``SOURCE_OPTIONS`` names, per adapter, the options that point at the raw files it reads, so the
workflow can list those files as inputs (an edited, added or removed raw file re-prepares the
dataset) and fill in the default raw folder only where an adapter takes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from dial_core.data import synthetic_adapter
from dial_core.data.adapters import airs, cityscapes, dubai, folder, inria, potsdam
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
    "cityscapes": cityscapes.prepare,
}

# Options naming raw files or folders; "path" defaults to data/raw/<dataset> in the workflow.
SOURCE_OPTIONS: dict[str, tuple[str, ...]] = {
    "synthetic": (),
    "inria": ("path",),
    "airs": ("path",),
    "potsdam": ("path",),
    "dubai": ("path",),
    "folder": folder.SOURCE_OPTIONS,
    "cityscapes": ("path",),
}

# Written by the downloader or by people, never read as data: partial downloads and their notes.
_NOT_SOURCES = (".part", ".part.json", ".mismatch", ".tmp")


def prepare_dataset(adapter: str, options: dict, name: str) -> Prepared:
    """Run the adapter called ``adapter`` on ``options``; ConfigError naming the known ones otherwise."""
    try:
        prepare = ADAPTERS[adapter]
    except (KeyError, TypeError):
        raise ConfigError(f"dataset adapter {adapter!r} is unknown; choose one of {', '.join(sorted(ADAPTERS))}") from None
    return prepare(options or {}, name)


def source_files(adapter: str, options: dict) -> list[Path]:
    """Every raw file under the adapter's source options (sorted; hidden and partial files left out).

    A source that does not exist yet yields nothing: the adapter itself reports it when it runs.
    """
    files: set[Path] = set()
    for key in SOURCE_OPTIONS.get(adapter, ()):
        value = (options or {}).get(key)
        if not value:
            continue
        path = Path(str(value)).expanduser()
        candidates = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for candidate in candidates:
            parts = candidate.relative_to(path).parts if candidate != path else (candidate.name,)
            if any(part.startswith(".") for part in parts) or candidate.name.endswith(_NOT_SOURCES):
                continue
            files.add(candidate)
    return sorted(files)
