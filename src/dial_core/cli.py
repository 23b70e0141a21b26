"""What every workflow script shares: logging to the rule's log file, threads, clean errors."""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from dial_core.errors import DialError


def run_step(main: Callable[[], None], log_file: str | None = None, threads: int = 1) -> None:
    """Run ``main`` with logging set up; a :class:`DialError` ends with its message (in the rule's
    log and on stderr) and exit code 1. So does a full disk or a read-only folder met outside
    :func:`dial_core.atomic.atomic_path`. Anything else is a bug and keeps its traceback.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        try:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(log_file, mode="w"))
        except OSError as err:
            print(f"error: {_write_error(Path(log_file), err)}", file=sys.stderr)
            sys.exit(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", handlers=handlers, force=True)
    import torch  # late: configuration scripts should not pay for torch

    from dial_core.allocator import keep_freed_memory

    torch.set_num_threads(max(1, threads))
    keep_freed_memory()
    try:
        main()
    except DialError as err:
        logging.getLogger("dial").error("error: %s", err)
        sys.exit(1)
    except OSError as err:
        if err.errno not in _DISK_ERRNOS or err.filename is None:
            raise
        logging.getLogger("dial").error("error: %s", _write_error(Path(err.filename), err))
        sys.exit(1)


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _write_error(path: Path, err: OSError) -> DialError:
    from dial_core.atomic import _output_error

    return _output_error(path, err)


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """For the Snakefile: print a parameter error without a traceback and stop before any job."""
    try:
        yield
    except DialError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
