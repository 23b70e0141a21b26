"""Tests for dial_core.data.archives: traversal checks, corrupt archives, tar, split 7z (INRIA layout)."""

from __future__ import annotations

import io
import os
import random
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import py7zr
import pytest

from dial_core.data.archives import (archive_kind, check_member_path, extract_archive, extract_multipart_7z,
                                     safe_extract_tar, safe_extract_zip)
from dial_core.errors import DataError

RNG = np.random.default_rng(3)
TIF_A = RNG.integers(0, 256, 60_000, dtype=np.uint8).tobytes()  # incompressible, so the 7z splits into 3 parts
TIF_B = RNG.integers(0, 256, 40_000, dtype=np.uint8).tobytes()


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data) if name.startswith("/") else zf.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz", special: tuple[tarfile.TarInfo, ...] = ()) -> Path:
    """Write a tar (``mode`` picks the compression) of regular files, plus ``special`` members."""
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in special:
            tf.addfile(info)
    return path


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


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
# Tar
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("suffix", "mode"), [(".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar", "w"),
                                              (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz")])
def test_tar_extracts_and_rerun_is_idempotent(tmp_path, suffix, mode):
    arc = _tar(tmp_path / f"AIRS{suffix}", {"AIRS/train/image/c1.tif": TIF_A, "AIRS/train/label/c1.tif": TIF_B},
               mode, special=(_special("AIRS/test", tarfile.DIRTYPE),))
    dest = tmp_path / "dest"
    out = extract_archive(arc, dest)
    root = (dest / "AIRS").resolve()
    assert sorted(out) == sorted([root / "train/image/c1.tif", root / "train/label/c1.tif"])
    assert (root / "train/image/c1.tif").read_bytes() == TIF_A and (root / "train/label/c1.tif").read_bytes() == TIF_B
    assert (root / "test").is_dir() and _no_staging(dest)
    mtime = (root / "train/image/c1.tif").stat().st_mtime_ns
    assert sorted(safe_extract_tar(arc, dest)) == sorted(out)
    assert (root / "train/image/c1.tif").stat().st_mtime_ns == mtime  # skipped, not rewritten


def test_tar_members_selection(tmp_path):
    arc = _tar(tmp_path / "a.tar.gz", {"a.txt": b"a", "b/c.txt": b"c"})
    dest = tmp_path / "dest"
    assert safe_extract_tar(arc, dest, members=["b/c.txt"]) == [(dest / "b/c.txt").resolve()]
    assert not (dest / "a.txt").exists()
    with pytest.raises(DataError, match="no member"):
        safe_extract_tar(arc, dest, members=["nope.txt"])


@pytest.mark.parametrize(("bad", "why"), [
    ("../evil.txt", "'..' in the path"),
    ("sub/../../evil.txt", "'..' in the path"),
    ("ABS", "absolute path"),
    ("symlink", "symbolic link"),
    ("hardlink", "hard link"),
    ("fifo", "fifo"),
    ("device", "device file"),
])
def test_tar_hostile_member_refused_before_anything_is_written(tmp_path, bad, why):
    outside = tmp_path / "evil_abs.txt"
    members, special = {"good.txt": b"fine"}, ()
    if bad == "ABS":
        bad = str(outside)
        members[bad] = b"pwned"
    elif bad == "symlink":
        special = (_special(bad, tarfile.SYMTYPE, "/etc/passwd"),)
    elif bad == "hardlink":
        special = (_special(bad, tarfile.LNKTYPE, "/etc/passwd"),)
    elif bad == "fifo":
        special = (_special(bad, tarfile.FIFOTYPE),)
    elif bad == "device":
        special = (_special(bad, tarfile.CHRTYPE),)
    else:
        members[bad] = b"pwned"
    arc = _tar(tmp_path / "evil.tar.gz", members, special=special)
    dest = tmp_path / "nested" / "dest"
    with pytest.raises(DataError, match="refusing to extract") as err:
        extract_archive(arc, dest)
    msg = str(err.value)
    assert repr(bad) in msg and str(arc) in msg and why in msg
    assert not dest.exists()  # not even the good member
    assert not outside.exists() and not (tmp_path / "nested" / "evil.txt").exists()


def test_truncated_tar_gz_names_the_archive(tmp_path):
    arc = _tar(tmp_path / "cut.tar.gz", {"a.tif": TIF_A, "b.tif": TIF_B})
    data = arc.read_bytes()
    arc.write_bytes(data[: len(data) * 2 // 3])
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"cut\.tar\.gz is corrupt or truncated"):
        safe_extract_tar(arc, dest)
    assert not (dest / "b.tif").exists() and _no_staging(dest)


def test_tar_cut_between_members_is_truncated_not_shorter(tmp_path):
    """tarfile itself lists a tar cut exactly after a member as a valid, shorter archive."""
    arc = _tar(tmp_path / "cut.tar", {"a.tif": TIF_A, "b.tif": TIF_B}, "w")
    first = 512 + -(-len(TIF_A) // 512) * 512  # header + padded data of a.tif
    arc.write_bytes(arc.read_bytes()[:first])
    with pytest.raises(DataError, match=r"cut\.tar is corrupt or truncated"):
        safe_extract_tar(arc, tmp_path / "dest")
    assert not (tmp_path / "dest" / "a.tif").exists()


def test_corrupt_tar_gz_data_leaves_no_file(tmp_path):
    arc = _tar(tmp_path / "bad.tar.gz", {"a.tif": TIF_A})
    data = bytearray(arc.read_bytes())
    data[len(data) // 2: len(data) // 2 + 50] = bytes(50)
    arc.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"bad\.tar\.gz is (corrupt|not a readable)"):
        safe_extract_tar(arc, dest)
    assert not (dest / "a.tif").exists() and _no_staging(dest)


def test_garbage_and_missing_tar(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(2000))
    with pytest.raises(DataError, match=r"junk\.tar\.gz is not a readable tar archive"):
        safe_extract_tar(junk, tmp_path / "dest")
    with pytest.raises(DataError, match="not found"):
        safe_extract_tar(tmp_path / "none.tar", tmp_path / "dest")


def test_extract_archive_dispatches_by_name(tmp_path, inria_parts):
    assert [archive_kind(Path(n)) for n in ["a.ZIP", "a.tar.gz", "a.tgz", "a.tar.xz", "a.7z", "a.7z.003", "a.rar"]] == \
        ["zip", "tar", "tar", "tar", "7z", "7z", None]
    inner, parts = inria_parts
    (parts[0].parent / "aerialimagelabeling.7z.004.part").write_bytes(b"a download in progress")
    out = extract_archive(parts[0], tmp_path / "x")  # the first part brings its numbered siblings
    assert out == [(tmp_path / "x" / "NEW2-AerialImageDataset.zip").resolve()]
    assert len(extract_archive(out[0], tmp_path / "x")) == 2
    rar = tmp_path / "a.rar"
    rar.write_bytes(b"x")
    with pytest.raises(DataError, match=r"a\.rar: unknown archive type"):
        extract_archive(rar, tmp_path / "x")


def test_airs_adapter_extracts_a_tar_gz(tmp_path):
    """Adapters that take a downloaded zip take a tar.gz the same way."""
    from dial_core.data.adapters.airs import _dataset_root

    raw = tmp_path / "raw"
    raw.mkdir()
    _tar(raw / "AIRS.tar.gz", {"AIRS/train/image/c1.tif": TIF_A, "AIRS/train/label/c1.tif": TIF_B})
    root = _dataset_root(raw, tmp_path / "extracted")
    assert root == tmp_path / "extracted" / "AIRS" and (root / "train/image/c1.tif").read_bytes() == TIF_A


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
