"""Reading a JSON file a user or an earlier rule wrote, with the project's error messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dial_core.errors import DataError


def read_json(path: str | Path, what: str, missing: str, unreadable: str = "") -> Any:
    """The parsed content of ``path``; a missing file or one that is not JSON is a DataError naming the
    file and ``what`` it should hold, with the fix: ``missing`` (how to make it) or ``unreadable``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: the {what} does not exist; {missing}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read the {what} ({err}){'; ' + unreadable if unreadable else ''}") from None
