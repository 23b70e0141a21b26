"""The class names and colours of a model's outputs, and how a request's classes are checked against them.

A checkpoint written by the workflow's ``pretrain`` rule carries its dataset's classes
(``[{"name", "color"}]``, as in ``dataset.json``); older checkpoints carry none, and a ``dataset.json``
supplies them. Every output of the command line (colour table, band names, polygon names, click
classes) comes from one :class:`ClassTable`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dial_core.errors import CheckpointError, DataError
from dial_core.json_files import read_json

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """Class index → name and RGB colour; ``source`` says where they come from (for messages)."""

    names: tuple[str, ...]
    colours: tuple[Colour, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colours) or not self.names:
            raise ValueError(f"{self.source}: {len(self.names)} names for {len(self.colours)} colours")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_entries(cls, entries: Any, source: str) -> "ClassTable":
        """From dataset.json's ``classes`` list (``[{"name": str, "color": [r, g, b]}]``)."""
        if not isinstance(entries, Sequence) or not entries:
            raise DataError(f"{source}: 'classes' must be a non-empty list of {{name, color}}")
        names, colours = [], []
        for i, entry in enumerate(entries):
            colour = entry.get("color") if isinstance(entry, Mapping) else None
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not isinstance(colour, Sequence) \
                    or len(colour) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in colour):
                raise DataError(f"{source}: class {i} is {entry!r:.120}; each class needs a 'name' and a 'color' "
                                "[r, g, b] (0-255)")
            names.append(entry["name"])
            colours.append(tuple(int(v) for v in colour))
        if len(set(names)) != len(names):
            raise DataError(f"{source}: class names repeat ({', '.join(names)}); each class needs its own name")
        return cls(tuple(names), tuple(colours), source)

    @classmethod
    def generic(cls, n_classes: int, source: str) -> "ClassTable":
        """``class_0`` … with matplotlib's qualitative tab20 colours: a model that names no classes."""
        from matplotlib import colormaps

        table = colormaps["tab20"]
        colours = [tuple(int(round(255 * v)) for v in table(i % table.N)[:3]) for i in range(n_classes)]
        return cls(tuple(f"class_{i}" for i in range(n_classes)), tuple(colours), source)

    def fits(self, n_classes: int, model: str) -> "ClassTable":
        """Itself when the model predicts exactly these classes; else a CheckpointError naming both."""
        if len(self) != n_classes:
            raise CheckpointError(f"{model} predicts {n_classes} classes but {self.source} lists {len(self)} "
                                  f"({', '.join(self.names)}); give the dataset.json of the data the model was trained on")
        return self

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GDAL colour table entries (RGBA) for a class raster."""
        return {i: (*colour, 255) for i, colour in enumerate(self.colours)}

    def describe(self) -> str:
        return ", ".join(f"{i}={name}" for i, name in enumerate(self.names))


def dataset_classes(path: str | Path) -> ClassTable:
    """The classes of a ``dataset.json`` (the canonical dataset format's)."""
    raw = read_json(path, "dataset description", "give the dataset.json of the data the model was trained on "
                    "(data/processed/<dataset>/dataset.json)")
    if not isinstance(raw, Mapping) or "classes" not in raw:
        raise DataError(f"{path} has no 'classes' list; give a dataset.json of the canonical format")
    return ClassTable.from_entries(raw["classes"], str(path))


def checkpoint_classes(payload: Mapping[str, Any], source: str) -> ClassTable | None:
    """The classes a checkpoint carries (the pretrain rule writes them), or None."""
    entries = payload.get("classes")
    return None if entries is None else ClassTable.from_entries(entries, source)


def agree(stored: ClassTable, given: ClassTable) -> None:
    """A class list given for a model that names its own must name the same classes, in the same order."""
    if stored.names != given.names:
        raise CheckpointError(f"{stored.source} was trained on the classes {stored.describe()} but {given.source} "
                              f"lists {given.describe()}; leave the class list out or give the matching one")
