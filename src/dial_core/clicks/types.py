"""The click record shared by agents, encodings, training and protocols."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Click:
    """A point annotation: pixel position and the class the user assigns to it."""

    row: int
    col: int
    cls: int

    def shifted(self, row_off: int, col_off: int) -> "Click":
        """The same click in the coordinates of a window starting at (row_off, col_off)."""
        return Click(self.row - row_off, self.col - col_off, self.cls)
