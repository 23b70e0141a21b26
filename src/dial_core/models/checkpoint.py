"""Checkpoint I/O: atomic writes, ``weights_only`` loads, and a readable error when one is broken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dial_core.atomic import atomic_path
from dial_core.errors import CheckpointError


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Save tensors, numbers, strings and dicts of them; the rename makes it all-or-nothing."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} is missing; run the rule that trains it first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated / foreign files
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); delete it and train again"
        ) from None
