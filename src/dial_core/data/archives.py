"""Safe extraction of downloaded archives (zip, and 7z split byte-wise into ``.001``, ``.002``, ...).

Why: archives come from the network. Every member name is checked before anything is written
(no absolute paths, no ``..``, no symlinks), so a hostile or broken archive cannot write outside
the target folder; corrupt or truncated archives raise :class:`DataError` naming the archive.
Files are extracted into a temporary folder inside ``dest`` and then renamed into place, so an
interrupted extraction never leaves a half file under its final name. A re-run skips files that
are already in place with the expected size.
"""

from __future__ import annotations

import glob
import io
import lzma
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from dial_core.errors import DataError

__all__ = ["check_member_path", "extract_multipart_7z", "safe_extract_zip"]

_STAGING_PREFIX = ".extract-tmp-"
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
               struct.error)


# --------------------------------------------------------------------------------------------
# Member checks
# --------------------------------------------------------------------------------------------
def check_member_path(dest: Path, name: str, archive: Path) -> Path:
    """Resolved target of member ``name`` inside ``dest``; DataError if it would land outside."""
    dest_resolved = Path(dest).resolve()

    def refuse(why: str) -> DataError:
        return DataError(f"refusing to extract member {name!r} of {archive}: {why}; it would land outside {dest}. "
                         "The archive is corrupt or hostile; delete it and download it again from the official source.")

    if not isinstance(name, str) or not name.strip("/\\"):
        raise refuse("empty member name")
    if "\x00" in name:
        raise refuse("NUL byte in the member name")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise refuse("absolute path")
    if ".." in PurePosixPath(posix).parts:
        raise refuse("'..' in the path")
    target = (dest_resolved / posix).resolve()
    if not target.is_relative_to(dest_resolved):
        raise refuse("the path resolves through a link")
    return target


def _require_members(available: Iterable[str], members: Iterable[str] | None, archive: Path) -> set[str] | None:
    if members is None:
        return None
    wanted = {m.rstrip("/") for m in members}
    missing = sorted(wanted - {a.rstrip("/") for a in available})
    if missing:
        raise DataError(f"{archive} has no member(s) {', '.join(map(repr, missing))}; "
                        "check the member names in params against the archive's listing")
    return wanted


# --------------------------------------------------------------------------------------------
# Staging helpers
# --------------------------------------------------------------------------------------------
def _prepare_dest(dest: Path, archive: Path) -> Path:
    """Create ``dest``, remove staging left by an interrupted run on the same archive, make a new one."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.glob(f"{glob.escape(_STAGING_PREFIX + archive.name)}-*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{archive.name}-", dir=dest))
    except OSError as exc:
        raise DataError(f"cannot create the extraction folder in {dest} for {archive}: {exc}") from exc


def _already_there(target: Path, size: int) -> bool:
    try:
        st = target.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _place(staged: Path, target: Path, archive: Path, name: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            raise DataError(f"cannot extract member {name!r} of {archive}: {target} is a folder; move it away and run again")
        os.replace(staged, target)
    except OSError as exc:
        raise DataError(f"cannot move extracted {name!r} of {archive} to {target}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Zip
# --------------------------------------------------------------------------------------------
def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def safe_extract_zip(archive: Path, dest: Path, members: Iterable[str] | None = None) -> list[Path]:
    """Extract ``archive`` (all members, or only ``members``) into ``dest``; return the file paths.

    Returned paths are the final (resolved) file paths of the selected members, including files
    that were skipped because they were already present with the right size.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError(f"archive {archive} not found; run the download step first")
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            # 1. check every member before writing anything
            targets: list[tuple[zipfile.ZipInfo, Path]] = []
            for info in infos:
                target = check_member_path(dest, info.filename, archive)
                if _zip_is_symlink(info):
                    raise DataError(f"refusing to extract member {info.filename!r} of {archive}: it is a symbolic link "
                                    f"that could point outside {dest}. Delete the archive and download it again.")
                targets.append((info, target))
            wanted = _require_members((i.filename for i in infos), members, archive)
            selected = [(i, t) for i, t in targets if wanted is None or i.filename.rstrip("/") in wanted]

            # 2. extract through the staging folder
            staging = _prepare_dest(dest, archive)
            out: list[Path] = []
            try:
                for info, target in selected:
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    out.append(target)
                    if _already_there(target, info.file_size):
                        continue
                    fd, tmp = tempfile.mkstemp(dir=staging)
                    with zf.open(info) as src, os.fdopen(fd, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    _place(Path(tmp), target, archive, info.filename)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return out
    except _ZIP_ERRORS as exc:
        raise DataError(f"{archive} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                        f"delete {archive} and download it again") from exc


# --------------------------------------------------------------------------------------------
# Multi-part 7z
# --------------------------------------------------------------------------------------------
class _ConcatReader(io.RawIOBase):
    """Read-only, seekable view of several files as one byte stream (the parts of a split archive)."""

    def __init__(self, paths: Sequence[Path]):
        super().__init__()
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 (closed in close())
        self._starts: list[int] = []
        pos = 0
        for f in self._files:
            self._starts.append(pos)
            pos += os.fstat(f.fileno()).st_size
        self._size = pos
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        new = base + offset
        if new < 0:
            raise OSError("negative seek position")
        self._pos = new
        return new

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            i = max(k for k, s in enumerate(self._starts) if s <= self._pos)
            f = self._files[i]
            f.seek(self._pos - self._starts[i])
            n = f.readinto(view[done:])
            if not n:  # a part shrank while open
                break
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _order_parts(parts: Sequence[Path]) -> list[Path]:
    """Sort split parts by number; DataError for a missing file, a gap or mixed base names."""
    paths = [Path(p) for p in parts]
    if not paths:
        raise DataError("no archive parts given; list the .7z.001, .7z.002, ... files in params")
    if len(paths) == 1 and not re.search(r"\.\d+$", paths[0].name):
        numbered: list[tuple[int, Path]] = [(1, paths[0])]
    else:
        numbered = []
        for p in paths:
            m = re.match(r"^(.*)\.(\d+)$", p.name)
            if not m:
                raise DataError(f"{p} is not a numbered part (name.7z.001, name.7z.002, ...); check the part list in params")
            numbered.append((int(m.group(2)), p))
        bases = {re.sub(r"\.\d+$", "", p.name) for p in paths}
        if len(bases) > 1:
            raise DataError(f"the archive parts belong to different archives ({', '.join(sorted(bases))}); "
                            "give the parts of one archive")
        numbered.sort()
        nums = [n for n, _ in numbered]
        if len(set(nums)) != len(nums):
            raise DataError(f"the same part is listed twice in {[str(p) for p in paths]}")
        first_path = numbered[0][1]
        width = len(first_path.name.rsplit(".", 1)[1])
        missing = [first_path.with_name(f"{first_path.name.rsplit('.', 1)[0]}.{n:0{width}d}")
                   for n in range(1, nums[-1] + 1) if n not in nums]
        if missing:
            raise DataError(f"archive part(s) missing: {', '.join(str(m) for m in missing)}; "
                            "download every part before extracting")
    absent = [str(p) for _, p in numbered if not p.is_file()]
    if absent:
        raise DataError(f"archive part(s) missing: {', '.join(absent)}; download every part before extracting")
    return [p for _, p in numbered]


def _sevenzip_errors() -> tuple[type[BaseException], ...]:
    import py7zr.exceptions as e

    return (e.ArchiveError, e.PasswordRequired, e.AbsolutePathError, EOFError, lzma.LZMAError, zlib.error,
            struct.error, ValueError, IndexError, KeyError, NotImplementedError)


def extract_multipart_7z(parts: Sequence[Path], dest: Path, members: Iterable[str] | None = None) -> list[Path]:
    """Extract a 7z archive split byte-wise into ``parts`` (``x.7z.001``, ``x.7z.002``, ...) into ``dest``.

    The parts are read as one concatenated stream (any order given; a single un-numbered ``.7z``
    also works). Returns the final paths of the selected files (including ones skipped because
    they were already in place with the right size).
    """
    try:
        import py7zr
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise DataError("py7zr is needed to extract .7z archives; install it (pip install py7zr)") from exc

    ordered = _order_parts(parts)
    dest = Path(dest)
    label = ordered[0] if len(ordered) == 1 else Path(f"{ordered[0]} (+{len(ordered) - 1} more parts)")
    errors = _sevenzip_errors()
    hint = f"delete the damaged part(s) of {ordered[0].name} and download them again" if len(ordered) > 1 \
        else f"delete {ordered[0]} and download it again"

    stream = io.BufferedReader(_ConcatReader(ordered), buffer_size=1 << 20)
    try:
        try:
            sz = py7zr.SevenZipFile(stream, mode="r")
        except errors as exc:
            raise DataError(f"{label} is not a readable 7z archive ({type(exc).__name__}: {exc}); "
                            f"{'are all parts present and complete? ' if len(ordered) > 1 else ''}{hint}") from exc
        with sz:
            try:
                infos = sz.list()
            except errors as exc:
                raise DataError(f"{label} is corrupt ({type(exc).__name__}: {exc}); {hint}") from exc
            # 1. check every member before writing anything
            targets = []
            for info in infos:
                target = check_member_path(dest, info.filename, label)
                if info.is_symlink:
                    raise DataError(f"refusing to extract member {info.filename!r} of {label}: it is a symbolic link "
                                    f"that could point outside {dest}. Delete the archive and download it again.")
                targets.append((info, target))
            wanted = _require_members((i.filename for i in infos), members, label)
            selected = [(i, t) for i, t in targets if wanted is None or i.filename.rstrip("/") in wanted]
            files = [(i, t) for i, t in selected if not i.is_directory]
            todo = [(i, t) for i, t in files if not _already_there(t, i.uncompressed)]
            for info, target in selected:
                if info.is_directory:
                    target.mkdir(parents=True, exist_ok=True)
            if not todo:
                return [t for _, t in files]

            # 2. extract the missing files into the staging folder, then move them into place
            staging = _prepare_dest(dest, ordered[0])
            try:
                try:
                    sz.extract(path=staging, targets=[i.filename for i, _ in todo])
                except errors as exc:
                    raise DataError(f"{label} is corrupt or truncated ({type(exc).__name__}: {exc}); {hint}") from exc
                for info, target in todo:
                    staged = staging / info.filename.replace("\\", "/")
                    if not staged.is_file() or staged.is_symlink():
                        raise DataError(f"{label}: member {info.filename!r} was not extracted; {hint}")
                    if staged.stat().st_size != info.uncompressed:
                        raise DataError(f"{label}: member {info.filename!r} extracted to {staged.stat().st_size} bytes, "
                                        f"expected {info.uncompressed}; {hint}")
                    _place(staged, target, label, info.filename)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return [t for _, t in files]
    finally:
        stream.close()
