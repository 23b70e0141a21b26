"""read_json: the one place a user's or a rule's JSON file is read, with errors naming the file and the fix."""

import pytest

from dial_core.errors import DataError
from dial_core.json_files import read_json


def test_reads_the_content(tmp_path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"classes": [1, 2]}')
    assert read_json(path, "thing", "make it") == {"classes": [1, 2]}


def test_missing_file_names_the_file_what_and_the_fix(tmp_path) -> None:
    with pytest.raises(DataError, match=r"gone\.json: the click log does not exist; write the clicks"):
        read_json(tmp_path / "gone.json", "click log", "write the clicks")


def test_invalid_json_names_the_file_and_the_fix(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: cannot read the dataset description \(.*\); delete it") as err:
        read_json(path, "dataset description", "prepare it", "delete it and prepare it again")
    assert "Traceback" not in str(err.value)
