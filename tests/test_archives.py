"""Tests for dial_core.data.archives: traversal checks, corrupt archives, split 7z (INRIA layout)."""

from __future__ import annotations

import io
import os
import random
import stat
import zipfile
from pathlib import Path

import numpy as np
import py7zr
import pytest

from dial_core.data.archives import check_member_path, extract_multipart_7z, safe_extract_zip
from dial_core.errors import DataError

RNG = np.random.default_rng(3)
TIF_A = RNG.integers(0, 256, 60_000, dtype=np.uint8).tobytes()  # incompressible, so the 7z splits into 3 parts
TIF_B = RNG.integers(0, 256, 40_000, dtype=np.uint8).tobytes()


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data) if name.startswith("/") else zf.writestr(name, data)
    return path


def _no_staging(dest: Path) -> bool:
    return not dest.exists() or not any(p.name.startswith(".extract-tmp-") for p in dest.iterdir())


# --------------------------------------------------------------------------------------------
# check_member_path
# --------------------------------------------------------------------------------------------
def test_check_member_path(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    arc = tmp_path / "a.zip"
    assert check_member_path(dest, "x/y.tif", arc) == (dest / "x" / "y.tif").resolve()
    for bad in ["../evil.txt", "x/../../evil", "/etc/passwd", "C:/evil", "..\\evil.txt", "", "a\x00b"]:
        with pytest.raises(DataError, match="refusing to extract"):
            check_member_path(dest, bad, arc)
    (dest / "link").symlink_to(tmp_path)  # an existing symlink in dest must not be a way out
    with pytest.raises(DataError, match=r"refusing to extract member 'link/evil' of .*a\.zip"):
        check_member_path(dest, "link/evil", arc)


# --------------------------------------------------------------------------------------------
# Zip
# --------------------------------------------------------------------------------------------
def test_zip_extracts_and_rerun_is_idempotent(tmp_path):
    arc = _zip(tmp_path / "a.zip", {"AerialImageDataset/train/images/austin1.tif": TIF_A,
                                    "AerialImageDataset/train/gt/austin1.tif": TIF_B, "AerialImageDataset/test/": b""})
    dest = tmp_path / "dest"
    out = safe_extract_zip(arc, dest)
    root = (dest / "AerialImageDataset").resolve()
    assert sorted(out) == sorted([root / "train/images/austin1.tif", root / "train/gt/austin1.tif"])
    assert (root / "train/images/austin1.tif").read_bytes() == TIF_A
    assert (root / "test").is_dir() and _no_staging(dest)
    mtime = (root / "train/gt/austin1.tif").stat().st_mtime_ns
    assert sorted(safe_extract_zip(arc, dest)) == sorted(out)
    assert (root / "train/gt/austin1.tif").stat().st_mtime_ns == mtime  # skipped, not rewritten


def test_zip_members_selection(tmp_path):
    arc = _zip(tmp_path / "a.zip", {"a.txt": b"a", "b/c.txt": b"c"})
    dest = tmp_path / "dest"
    assert safe_extract_zip(arc, dest, members=["b/c.txt"]) == [(dest / "b/c.txt").resolve()]
    assert not (dest / "a.txt").exists()
    with pytest.raises(DataError, match="no member"):
        safe_extract_zip(arc, dest, members=["nope.txt"])


@pytest.mark.parametrize("bad", ["../evil.txt", "ABS"])
def test_zip_traversal_refused_before_anything_is_written(tmp_path, bad):
    outside = tmp_path / "evil_abs.txt"
    name = str(outside) if bad == "ABS" else bad
    arc = _zip(tmp_path / "evil.zip", {"good.txt": b"fine", name: b"pwned"})
    dest = tmp_path / "nested" / "dest"
    with pytest.raises(DataError, match="refusing to extract") as err:
        safe_extract_zip(arc, dest)
    assert repr(name) in str(err.value) and "evil.zip" in str(err.value)
    assert not dest.exists()  # not even the good member
    assert not outside.exists() and not (tmp_path / "nested" / "evil.txt").exists()


def test_zip_symlink_member_refused(tmp_path):
    arc = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract_zip(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_truncated_zip(tmp_path):
    arc = _zip(tmp_path / "cut.zip", {"a.tif": TIF_A})
    data = arc.read_bytes()
    arc.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.zip is corrupt or truncated"):
        safe_extract_zip(arc, tmp_path / "dest")


def test_corrupt_zip_data_leaves_no_file(tmp_path):
    arc = _zip(tmp_path / "bad.zip", {"a.tif": TIF_A}, compression=zipfile.ZIP_STORED)
    data = bytearray(arc.read_bytes())
    data[1000:1010] = b"\xff" * 10  # inside a.tif's stored bytes: CRC check fails
    arc.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"bad\.zip is corrupt"):
        safe_extract_zip(arc, dest)
    assert not (dest / "a.tif").exists() and _no_staging(dest)


def test_missing_zip(tmp_path):
    with pytest.raises(DataError, match="not found"):
        safe_extract_zip(tmp_path / "none.zip", tmp_path / "dest")


# --------------------------------------------------------------------------------------------
# Multi-part 7z (INRIA: aerialimagelabeling.7z.00N -> NEW2-AerialImageDataset.zip)
# --------------------------------------------------------------------------------------------
@pytest.fixture()
def inria_parts(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    inner = _zip(src / "NEW2-AerialImageDataset.zip", {
        "AerialImageDataset/train/images/austin1.tif": TIF_A,
        "AerialImageDataset/train/gt/austin1.tif": TIF_B,
    }, compression=zipfile.ZIP_STORED)
    whole = tmp_path / "dl" / "aerialimagelabeling.7z"
    whole.parent.mkdir()
    with py7zr.SevenZipFile(whole, "w") as sz:
        sz.write(inner, arcname="NEW2-AerialImageDataset.zip")
    data = whole.read_bytes()
    whole.unlink()
    size = -(-len(data) // 3)
    parts = []
    for i in range(3):
        part = whole.with_name(f"{whole.name}.{i + 1:03d}")
        part.write_bytes(data[i * size:(i + 1) * size])
        parts.append(part)
    assert all(p.stat().st_size > 0 for p in parts)
    return inner, parts


def test_multipart_7z_extracts_inner_zip(tmp_path, inria_parts):
    inner, parts = inria_parts
    dest = tmp_path / "extracted"
    shuffled = parts[:]
    random.Random(0).shuffle(shuffled)
    out = extract_multipart_7z(shuffled, dest)
    target = (dest / "NEW2-AerialImageDataset.zip").resolve()
    assert out == [target]
    assert target.read_bytes() == inner.read_bytes()
    assert _no_staging(dest)
    mtime = target.stat().st_mtime_ns
    assert extract_multipart_7z(parts, dest) == [target]  # idempotent re-run
    assert target.stat().st_mtime_ns == mtime
    files = safe_extract_zip(target, dest)  # and the inner zip is usable
    assert (dest / "AerialImageDataset/train/images/austin1.tif").read_bytes() == TIF_A and len(files) == 2


def test_multipart_7z_missing_part(tmp_path, inria_parts):
    _, parts = inria_parts
    with pytest.raises(DataError, match=r"missing: .*aerialimagelabeling\.7z\.002"):
        extract_multipart_7z([parts[0], parts[2]], tmp_path / "dest")
    parts[1].unlink()
    with pytest.raises(DataError, match=r"aerialimagelabeling\.7z\.002"):
        extract_multipart_7z(parts, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_multipart_7z_without_last_part_is_corrupt(tmp_path, inria_parts):
    _, parts = inria_parts
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"aerialimagelabeling\.7z\.001"):
        extract_multipart_7z(parts[:2], dest)
    assert not (dest / "NEW2-AerialImageDataset.zip").exists() and _no_staging(dest)


def test_multipart_7z_damaged_part(tmp_path, inria_parts):
    _, parts = inria_parts
    data = bytearray(parts[1].read_bytes())
    data[100:200] = bytes(100)
    parts[1].write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="corrupt"):
        extract_multipart_7z(parts, dest)
    assert not (dest / "NEW2-AerialImageDataset.zip").exists() and _no_staging(dest)


@pytest.mark.parametrize("bad", ["../evil.txt", "sub/../../evil.txt", "ABS"])
def test_7z_traversal_member_refused(tmp_path, bad):
    arc = tmp_path / "evil.7z"
    if bad == "ABS":
        bad = str(tmp_path / "a" / "evil.txt")
    with py7zr.SevenZipFile(arc, "w") as sz:
        sz.writestr(b"fine", "good.txt")
        sz._writestr(b"pwned", bad)  # the public writestr refuses such names
    dest = tmp_path / "a" / "dest"
    with pytest.raises(DataError, match="refusing to extract") as err:
        extract_multipart_7z([arc], dest)
    assert repr(bad) in str(err.value) and "evil.7z" in str(err.value)
    assert not dest.exists() and not (tmp_path / "a" / "evil.txt").exists()


def test_part_names_must_be_numbered(tmp_path):
    with pytest.raises(DataError, match="not a numbered part"):
        extract_multipart_7z([tmp_path / "a.7z.001", tmp_path / "a.7z"], tmp_path / "dest")
    with pytest.raises(DataError, match="different archives"):
        extract_multipart_7z([tmp_path / "a.7z.001", tmp_path / "b.7z.002"], tmp_path / "dest")
    with pytest.raises(DataError, match="no archive parts"):
        extract_multipart_7z([], tmp_path / "dest")


def test_garbage_7z(tmp_path):
    arc = tmp_path / "junk.7z.001"
    arc.write_bytes(os.urandom(1000))
    with pytest.raises(DataError, match=r"junk\.7z\.001 .*not a readable 7z archive"):
        extract_multipart_7z([arc], tmp_path / "dest")
    empty = tmp_path / "empty.7z"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.7z"):
        extract_multipart_7z([empty], tmp_path / "dest")


def test_7z_from_memory_stream_reader_is_seekable(tmp_path, inria_parts):
    """The concatenated reader behaves like one file (py7zr seeks back and forth)."""
    from dial_core.data.archives import _ConcatReader

    _, parts = inria_parts
    whole = b"".join(p.read_bytes() for p in parts)
    with io.BufferedReader(_ConcatReader(parts)) as r:
        r.seek(len(parts[0].read_bytes()) - 5)
        assert r.read(10) == whole[len(parts[0].read_bytes()) - 5:][:10]
        r.seek(-3, io.SEEK_END)
        assert r.read() == whole[-3:]
        r.seek(0)
        assert r.read() == whole
