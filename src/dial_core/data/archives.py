"""Safe extraction of downloaded archives: zip, tar (plain, gzip, bzip2, xz) and 7z (also split
byte-wise into ``.001``, ``.002``, ...); :func:`extract_archive` picks the format from the name.

Why: archives come from the network. Every member is checked before anything is written
(no absolute paths, no ``..``, no symbolic or hard links, no device files or fifos), so a hostile
or broken archive cannot write outside the target folder; corrupt or truncated archives raise
:class:`DataError` naming the archive.
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
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar

from dial_core.atomic import default_file_mode
from dial_core.errors import DataError

__all__ = ["ARCHIVE_SUFFIXES", "archive_kind", "check_member_path", "extract_archive", "extract_multipart_7z",
           "safe_extract_tar", "safe_extract_zip"]

_STAGING_PREFIX = ".extract-tmp-"
_M = TypeVar("_M")  # a format's member record: ZipInfo, TarInfo, py7zr FileInfo
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
               struct.error)
# Reading a tar: tarfile's own errors, plus what the gzip / bz2 / lzma decompressors raise on damaged
# or cut streams (gzip.BadGzipFile and bz2's "Invalid data stream" are OSErrors; writes are wrapped
# separately, so an OSError here is the archive's, not the disk's).
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)

#: Name endings understood by :func:`extract_archive` -> format (longest endings first).
ARCHIVE_SUFFIXES: dict[str, str] = {
    ".tar.gz": "tar", ".tar.bz2": "tar", ".tar.xz": "tar", ".tgz": "tar", ".tbz2": "tar", ".txz": "tar",
    ".tar": "tar", ".zip": "zip", ".7z": "7z",
}


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
        os.chmod(staged, default_file_mode())  # staged by mkstemp (0600): colleagues and DVC caches must read it
        os.replace(staged, target)
    except OSError as exc:
        raise DataError(f"cannot move extracted {name!r} of {archive} to {target}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The two steps every format shares; a format supplies only how to read its member records
# --------------------------------------------------------------------------------------------
def _check_members(infos: Sequence[_M], archive: Path, dest: Path, members: Iterable[str] | None, *,
                   name: Callable[[_M], str], refuse: Callable[[_M], str | None]) -> list[tuple[_M, Path]]:
    """Check every member before anything is written; return the selected ``(member, target)`` pairs.

    Each name goes through :func:`check_member_path`; ``refuse(member)`` says why a member of a
    forbidden type (link, device, ...) may not be extracted, or None. ``members`` (if given) must
    all exist; only they are selected.
    """
    targets: list[tuple[_M, Path]] = []
    for info in infos:
        target = check_member_path(dest, name(info), archive)
        why = refuse(info)
        if why is not None:
            raise DataError(f"refusing to extract member {name(info)!r} of {archive}: {why}. "
                            "Delete the archive and download it again.")
        targets.append((info, target))
    wanted = _require_members((name(i) for i in infos), members, archive)
    return [(i, t) for i, t in targets if wanted is None or name(i).rstrip("/") in wanted]


def _extract_staged(selected: Sequence[tuple[_M, Path]], archive: Path, dest: Path, *, name: Callable[[_M], str],
                    is_dir: Callable[[_M], bool], size: Callable[[_M], int],
                    copy: Callable[[_M, BinaryIO, Path], None]) -> list[Path]:
    """Write the selected files through a staging folder in ``dest``; return their final paths.

    Folders are created; a file already in place with the right ``size`` is skipped; any other is
    written by ``copy(member, open_temp_file, temp_path)`` into a temporary file in the staging
    folder and then renamed into place, so no half file ever stands under a final name.
    """
    staging = _prepare_dest(dest, archive)
    out: list[Path] = []
    try:
        for info, target in selected:
            if is_dir(info):
                target.mkdir(parents=True, exist_ok=True)
                continue
            out.append(target)
            if _already_there(target, size(info)):
                continue
            fd, tmp = tempfile.mkstemp(dir=staging)
            with os.fdopen(fd, "wb") as dst:
                copy(info, dst, Path(tmp))
            _place(Path(tmp), target, archive, name(info))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------
# Zip
# --------------------------------------------------------------------------------------------
def _zip_name(info: zipfile.ZipInfo) -> str:
    return info.filename


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
            def refuse(info: zipfile.ZipInfo) -> str | None:
                return f"it is a symbolic link that could point outside {dest}" if _zip_is_symlink(info) else None

            def copy(info: zipfile.ZipInfo, dst: BinaryIO, tmp: Path) -> None:
                with zf.open(info) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)

            selected = _check_members(zf.infolist(), archive, dest, members, name=_zip_name, refuse=refuse)
            return _extract_staged(selected, archive, dest, name=_zip_name, is_dir=zipfile.ZipInfo.is_dir,
                                   size=lambda info: info.file_size, copy=copy)
    except _ZIP_ERRORS as exc:
        raise DataError(f"{archive} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                        f"delete {archive} and download it again") from exc


# --------------------------------------------------------------------------------------------
# Tar (plain, .tar.gz / .tgz, .tar.bz2, .tar.xz)
# --------------------------------------------------------------------------------------------
def _tar_name(info: tarfile.TarInfo) -> str:
    return info.name


def _tar_kind(info: tarfile.TarInfo) -> str | None:
    """Why member ``info`` may not be extracted (its type), or None for a regular file or folder."""
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.ischr() or info.isblk():
        return "a device file"
    if info.isfifo():
        return "a fifo"
    if info.isfile() or info.isdir():
        return None
    return f"an unsupported tar member type ({info.type!r})"


def _tar_check_end(tf: tarfile.TarFile) -> None:
    """Raise if the archive stops without its end-of-archive block or its compressed stream is damaged.

    ``tarfile`` ends its listing quietly when the data runs out exactly between two members, so a
    tar cut at a 512-byte boundary would otherwise extract as a shorter, valid-looking archive;
    every tar writer ends the archive with zero blocks, and one is required here. ``tarfile`` also
    stops reading at that block, before the gzip / xz trailer, so their checksums (CRC32 / CRC64)
    would never be checked: the rest of the stream is read here to make them run.
    """
    assert tf.fileobj is not None
    tf.fileobj.seek(tf.offset)
    block = tf.fileobj.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"no end-of-archive block after byte {tf.offset} of the tar stream")
    while tf.fileobj.read(1 << 20):
        pass


def safe_extract_tar(archive: Path, dest: Path, members: Iterable[str] | None = None) -> list[Path]:
    """Extract tar ``archive`` (plain or gzip/bzip2/xz compressed; all members, or only ``members``)
    into ``dest``; return the final paths of the selected files (as :func:`safe_extract_zip`).

    Checks: ``tarfile``'s ``filter="data"`` is not used because nothing here calls
    ``TarFile.extract``/``extractall``; each member is checked by hand before anything is written,
    more strictly than that filter: names go through :func:`check_member_path` (no absolute path,
    no ``..``, no way out through a link already in ``dest``), and symbolic links, hard links
    (which the data filter would allow inside ``dest``), device files, fifos and other special
    members are refused, as for zip and 7z. Only the bytes of regular files are copied, through
    the staging folder; owners, modes and times from the archive are not applied (no setuid bits).
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError(f"archive {archive} not found; run the download step first")
    corrupt = f"delete {archive} and download it again"
    try:
        tf = tarfile.open(archive, mode="r:*")
    except _TAR_ERRORS as exc:
        raise DataError(f"{archive} is not a readable tar archive ({type(exc).__name__}: {exc}); {corrupt}") from exc
    with tf:
        try:
            infos = tf.getmembers()
            _tar_check_end(tf)
        except _TAR_ERRORS as exc:
            raise DataError(f"{archive} is corrupt or truncated ({type(exc).__name__}: {exc}); {corrupt}") from exc

        def refuse(info: tarfile.TarInfo) -> str | None:
            why = _tar_kind(info)
            return None if why is None else f"it is {why}, which could reach outside {dest} or is not a data file"

        def copy(info: tarfile.TarInfo, dst: BinaryIO, tmp: Path) -> None:
            src = tf.extractfile(info)
            assert src is not None  # a regular file (checked by refuse)
            written = 0
            while True:
                try:
                    block = src.read(1 << 20)
                except _TAR_ERRORS as exc:
                    raise DataError(f"{archive} is corrupt or truncated (member {info.name!r}: "
                                    f"{type(exc).__name__}: {exc}); {corrupt}") from exc
                if not block:
                    break
                try:
                    dst.write(block)
                except OSError as exc:
                    raise DataError(f"cannot write member {info.name!r} of {archive} into {tmp.parent}: "
                                    f"{exc}; free disk space or fix permissions and run again") from exc
                written += len(block)
            if written != info.size:
                raise DataError(f"{archive}: member {info.name!r} extracted to {written} bytes, "
                                f"expected {info.size}; {corrupt}")

        selected = _check_members(infos, archive, dest, members, name=_tar_name, refuse=refuse)
        return _extract_staged(selected, archive, dest, name=_tar_name, is_dir=tarfile.TarInfo.isdir,
                               size=lambda info: info.size, copy=copy)


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
            selected = _check_members(
                infos, label, dest, members, name=lambda info: info.filename,
                refuse=lambda info: f"it is a symbolic link that could point outside {dest}" if info.is_symlink else None)
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


# --------------------------------------------------------------------------------------------
# Any supported archive
# --------------------------------------------------------------------------------------------
def archive_kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"`` or ``"7z"`` from the name of ``path`` (``x.7z.001`` is 7z), else None."""
    name = Path(path).name.lower()
    if re.search(r"\.7z\.\d+$", name):
        return "7z"
    return next((kind for suffix, kind in ARCHIVE_SUFFIXES.items() if name.endswith(suffix)), None)


def extract_archive(archive: Path, dest: Path, members: Iterable[str] | None = None) -> list[Path]:
    """Extract any supported archive into ``dest`` with the checks of its format; return the file paths.

    The format comes from the name (see :data:`ARCHIVE_SUFFIXES`). For a split 7z, pass the first
    part (``x.7z.001``): its numbered siblings are read with it.
    """
    archive = Path(archive)
    kind = archive_kind(archive)
    if kind == "zip":
        return safe_extract_zip(archive, dest, members)
    if kind == "tar":
        return safe_extract_tar(archive, dest, members)
    if kind == "7z":
        m = re.match(r"^(.*\.7z)\.\d+$", archive.name, flags=re.IGNORECASE)
        parts = [p for p in archive.parent.glob(glob.escape(m.group(1)) + ".[0-9]*")
                 if re.fullmatch(r"\.\d+", p.name[len(m.group(1)):])] if m else [archive]  # not x.7z.002.part
        return extract_multipart_7z(parts or [archive], dest, members)
    known = ", ".join(ARCHIVE_SUFFIXES)
    raise DataError(f"{archive}: unknown archive type (supported name endings: {known}, .7z.001); "
                    "rename it to its format's ending or extract it by hand")
