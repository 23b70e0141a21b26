"""Atomic file writes: a killed job never leaves a half-written file that a later job trusts.

Every output goes through :func:`atomic_path` (temp file beside the target, then rename), which is
therefore also where two things are settled for every output:

- the final file gets the permissions a plain ``open()`` would give it (``0o666 & ~umask``), not the
  private ``0o600`` of :func:`tempfile.mkstemp`, so colleagues sharing the results can read them;
- a full disk, an exhausted quota, a read-only or non-writable folder ends as :class:`OutputError`
  naming the output and the fix, instead of a traceback (or torch's "unexpected pos 704 vs 598").
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dial_core.errors import OutputError

# errno values that say "this disk / folder cannot take the file", whatever wrote it
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
# below this many free bytes after a failed write, the disk is taken to be the cause (writers such as
# torch.save and GDAL report a full disk as RuntimeError / RasterioIOError without an errno)
_FULL_BELOW = 1 << 20


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the process umask."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux ≥ 4.7 reports it without changing it (os.umask is process-wide, not thread-safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Raises :class:`OutputError` (naming ``path`` and the fix) when the folder cannot be created or
    written, or the disk is full, whether the failure comes from Python's I/O or from a writer that
    hides the errno (torch.save, rasterio).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _output_error(target, exc) from exc
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except Exception as exc:
            error = _diagnose(target, tmp_path, exc)
            if error is None:
                raise
            raise error from exc
        try:
            os.chmod(tmp_path, default_file_mode())
            os.replace(tmp_path, target)
        except OSError as exc:
            raise _output_error(target, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)


def _errnos(exc: BaseException) -> Iterator[int]:
    """errno values along the exception's cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            yield current.errno
        current = current.__cause__ or current.__context__


def _diagnose(target: Path, tmp: Path, exc: Exception) -> OutputError | None:
    """An :class:`OutputError` when ``exc`` (raised while writing ``tmp``) comes from the disk or the
    folder, else None: the body of the ``with`` may also fail for reasons of its own (a corrupt input,
    a bug), and those keep their own error."""
    if isinstance(exc, OutputError):
        return None
    for number in _errnos(exc):
        if number in _NO_SPACE:
            return _output_error(target, exc, number)
        if number in _NOT_WRITABLE and _concerns(exc, tmp):
            return _output_error(target, exc, number)
    if isinstance(exc, (OSError, RuntimeError)) or type(exc).__module__.startswith("rasterio"):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(tmp.parent).free < _FULL_BELOW:
                return _output_error(target, exc, errno.ENOSPC)
    return None


def _concerns(exc: BaseException, tmp: Path) -> bool:
    """Whether a permission error is about the output (its temp file or folder), not an input."""
    filename = getattr(exc, "filename", None)
    if filename is None:
        return True
    try:
        path = Path(os.fsdecode(filename)).resolve()
    except (TypeError, ValueError):
        return True
    return path == tmp.resolve() or path == tmp.parent.resolve()


def _output_error(target: Path, exc: BaseException, number: int | None = None) -> OutputError:
    """The user-facing error for a failed write of ``target``: what happened and what to do."""
    if number is None:
        number = getattr(exc, "errno", None)
    cause = f"{type(exc).__name__}: {exc}"
    if number in _NO_SPACE:
        mount = _mount_point(target.parent)
        free = _free_mib(target.parent)
        if number == errno.EDQUOT:
            what, fix = "your disk quota is exhausted", f"free space in your quota on {mount} (or ask for a larger one)"
        else:
            what, fix = "the disk is full", f"free space on {mount}"
        return OutputError(
            f"cannot write {target}: {what} ({free} free on {mount}; {cause}); "
            f"{fix} or choose another working directory (snakemake --directory), then run again"
        )
    if number in _NOT_WRITABLE:
        folder = _existing_folder(target.parent)
        what = "is on a read-only file system" if number == errno.EROFS else "is not writable"
        return OutputError(
            f"cannot write {target}: the folder {folder} {what} ({cause}); "
            f"make {folder} writable or choose another working directory (snakemake --directory), then run again"
        )
    folder = _existing_folder(target.parent)
    return OutputError(f"cannot write {target} ({cause}); check that {folder} is a writable folder with free space, then run again")


def _existing_folder(folder: Path) -> Path:
    """The nearest folder that exists: the one to make writable when creating subfolders fails."""
    current = folder
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _mount_point(folder: Path) -> Path:
    current = _existing_folder(folder).resolve()
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current


def _free_mib(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(_existing_folder(folder)).free / 2**20:.0f} MiB"
    except OSError:
        return "unknown space"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike[str], frame: Any) -> None:
    """Write a pandas DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
