"""Resumable, checksum-verified downloads for the explicit download rules.

Why this shape: dataset archives are several GB each and the servers hosting them drop
connections; a restarted job must continue where the last one stopped (HTTP ``Range``), never
trust a half-transferred file, and never destroy bytes a user may want to inspect.

* Bytes go to ``<dest>.part``; only a verified file is renamed (atomically) to ``dest``.
* A checksum mismatch keeps the bytes as ``<dest>.mismatch`` and raises :class:`DataError`.
* Network failures (refused/reset connections, timeouts, short reads, HTTP 5xx/408/429) are
  retried with exponential back-off; other 4xx fail at once.

Only the standard library is used for HTTP (``urllib.request``); progress is shown with tqdm.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from dial_core.errors import DataError

__all__ = ["download", "file_checksum", "parse_checksum", "read_checksum_file"]

log = logging.getLogger(__name__)

#: Injectable for tests (patch ``dial_core.data.download._sleep`` with a no-op).
_sleep = time.sleep

#: Hex digest length of each supported algorithm.
_HEX_LEN = {"sha256": 64, "md5": 32}
_USER_AGENT = "dial-core-downloader/1"
_RETRY_STATUS = frozenset({408, 429})


class _Retryable(Exception):
    """A transient failure: the attempt may be repeated (partial bytes are kept)."""


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------
def parse_checksum(spec: str) -> tuple[str, str]:
    """``"sha256:<hex>"`` / ``"md5:<hex>"`` / bare 64-hex (sha256) / bare 32-hex (md5) -> (algorithm, hex)."""
    if not isinstance(spec, str):
        raise DataError(f"checksum {spec!r} is not a string; write it as 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'")
    text = spec.strip().lower()
    if ":" in text:
        algorithm, _, digest = text.partition(":")
        algorithm, digest = algorithm.strip(), digest.strip()
        if algorithm not in _HEX_LEN:
            raise DataError(f"checksum {spec!r}: unsupported algorithm {algorithm!r}; "
                            f"use one of {', '.join(sorted(_HEX_LEN))} (e.g. 'sha256:<64 hex digits>')")
    else:
        digest = text
        algorithm = next((a for a, n in _HEX_LEN.items() if len(digest) == n), "")
        if not algorithm:
            raise DataError(f"checksum {spec!r} is neither 64 hex digits (sha256) nor 32 (md5); "
                            "write it as 'sha256:<hex>' or 'md5:<hex>'")
    if len(digest) != _HEX_LEN[algorithm] or not re.fullmatch(r"[0-9a-f]+", digest):
        raise DataError(f"checksum {spec!r}: a {algorithm} digest must be {_HEX_LEN[algorithm]} hex digits")
    return algorithm, digest


def file_checksum(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest (lower case, no ``alg:`` prefix) of the file at ``path``."""
    path = Path(path)
    try:
        h = hashlib.new(algorithm)
    except (ValueError, TypeError) as exc:
        raise DataError(f"unsupported checksum algorithm {algorithm!r} for {path}; use sha256 or md5") from exc
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError as exc:
        raise DataError(f"cannot checksum {path}: file not found") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} to checksum it: {exc}") from exc
    return h.hexdigest()


_BSD_LINE = re.compile(r"^(?P<alg>[A-Za-z0-9-]+)\s*\((?P<name>.+)\)\s*=\s*(?P<hex>[0-9A-Fa-f]+)$")
_GNU_LINE = re.compile(r"^\\?(?P<hex>[0-9A-Fa-f]+)\s[ *](?P<name>.+)$")


def read_checksum_file(path_or_text: str | os.PathLike[str], filename: str) -> str:
    """Find ``filename`` in a sha256sum/md5sum list and return ``"sha256:<hex>"`` or ``"md5:<hex>"``.

    ``path_or_text`` is a path (``Path``, or a one-line ``str`` naming an existing file) or the
    list's text itself. Lines are ``<hex>  <name>`` or ``<hex> *<name>`` (GNU) or
    ``SHA256 (<name>) = <hex>`` (BSD); blank lines and ``#`` comments are ignored. ``filename``
    matches a listed name exactly, else a listed name's last path component.
    """
    if isinstance(path_or_text, os.PathLike) or (
        isinstance(path_or_text, str) and "\n" not in path_or_text and os.path.isfile(path_or_text)
    ):
        source = str(path_or_text)
        try:
            text = Path(path_or_text).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise DataError(f"cannot read checksum list {source}: {exc}") from exc
    else:
        source, text = "the checksum list", str(path_or_text)

    entries: list[tuple[str, str]] = []  # (name, "alg:hex")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _BSD_LINE.match(line) or _GNU_LINE.match(line)
        if not m:
            continue
        digest = m.group("hex").lower()
        alg = m.groupdict().get("alg")
        try:
            algorithm, digest = parse_checksum(f"{alg.lower()}:{digest}" if alg else digest)
        except DataError:
            continue  # e.g. sha1 or sha512 lines: not ours
        entries.append((m.group("name").strip(), f"{algorithm}:{digest}"))

    wanted = filename.replace("\\", "/")
    hits = [c for n, c in entries if n.replace("\\", "/") == wanted]
    if not hits:
        hits = [c for n, c in entries if n.replace("\\", "/").lstrip("*").split("/")[-1] == wanted.split("/")[-1]]
    hits = list(dict.fromkeys(hits))
    if len(hits) > 1:
        raise DataError(f"{source} lists {filename!r} with different checksums ({', '.join(hits)}); fix the list")
    if not hits:
        listed = ", ".join(n for n, _ in entries[:10]) or "no usable sha256/md5 lines"
        raise DataError(f"{source} has no checksum for {filename!r} (it lists: {listed}); "
                        "add a '<hex>  <name>' line for it or fix the file name")
    return hits[0]


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------
def download(url: str, dest: Path, checksum: str | None, *, retries: int = 5, backoff_s: float = 1.0,
             timeout_s: float = 60.0, chunk_bytes: int = 1 << 20, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` and verifying ``checksum``.

    Returns ``dest``. An existing ``dest`` that matches ``checksum`` (or any existing ``dest`` when
    ``checksum`` is None) is returned without a request. ``retries`` counts repeated attempts
    after the first; the counter starts again after an attempt that added bytes, so a flaky
    multi-GB transfer that keeps progressing is not abandoned.
    """
    dest = Path(dest)
    expected = parse_checksum(checksum) if checksum is not None else None
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DataError(f"cannot download {url!r} for {dest}: only http:// and https:// URLs are supported")
    if retries < 0 or chunk_bytes <= 0:
        raise ValueError("retries must be >= 0 and chunk_bytes > 0")

    if dest.exists():
        if expected is None:
            log.warning("%s exists and no checksum is given: using it unverified", dest)
            return dest
        actual = file_checksum(dest, expected[0])
        if actual == expected[1]:
            return dest
        raise DataError(
            f"{dest} exists but does not match its checksum (expected {expected[0]}:{expected[1]}, "
            f"actual {expected[0]}:{actual}); delete {dest} and run again to download it from {url}; "
            "if the source changed, update the checksum in params"
        )

    if expected is None:
        log.warning("downloading %s without a checksum: %s will not be verified", url, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create folder {dest.parent} for {dest}: {exc}") from exc
    part = dest.with_name(dest.name + ".part")

    failures = 0
    while True:
        size_before = _size(part)
        try:
            _attempt(url, part, timeout_s=timeout_s, chunk_bytes=chunk_bytes, progress=progress, label=dest.name)
            break
        except _Retryable as exc:
            if _size(part) > size_before:
                failures = 0  # progress was made: this is a flaky line, not a dead server
            if failures >= retries:
                kept = f"; the {_size(part)} bytes received so far are kept in {part} and a new run resumes" \
                    if _size(part) else ""
                raise DataError(
                    f"download of {url} failed after {failures + 1} attempt(s): {exc}{kept}. "
                    "Check the network and the URL, then run again."
                ) from exc
            delay = backoff_s * 2 ** failures
            log.warning("download of %s: %s; retrying in %.1f s (%d/%d)", url, exc, delay, failures + 1, retries)
            failures += 1
            _sleep(delay)

    if expected is not None:
        algorithm, want = expected
        actual = file_checksum(part, algorithm)
        if actual != want:
            bad = dest.with_name(dest.name + ".mismatch")
            os.replace(part, bad)
            raise DataError(
                f"{dest.name} downloaded from {url} does not match its checksum: expected {algorithm}:{want}, "
                f"actual {algorithm}:{actual}. The bytes are kept as {bad} for inspection. "
                f"Delete {bad} and run again; if the source changed, update the checksum in params."
            )
    os.replace(part, dest)
    return dest


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 100-199/1000"`` -> (100, 1000); ``"bytes */1000"`` -> (None, 1000); unknown parts None."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _attempt(url: str, part: Path, *, timeout_s: float, chunk_bytes: int, progress: bool, label: str) -> None:
    """One request: append to (206) or rewrite (200) ``part``; raise _Retryable on transient failure."""
    offset = _size(part)
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 (scheme checked)
    except urllib.error.HTTPError as exc:
        status, content_range = exc.code, exc.headers.get("Content-Range") if exc.headers else None
        exc.close()
        if status == 416 and offset:
            _, total = _content_range(content_range)
            if total is None or total == offset:
                return  # the part is complete (or the server cannot say): the checksum decides
            part.unlink()  # the part does not fit the remote file: start over
            raise _Retryable(f"HTTP 416: {part.name} has {offset} bytes but the file has {total}; starting over") from exc
        if status >= 500 or status in _RETRY_STATUS:
            raise _Retryable(f"HTTP {status} {exc.reason}") from exc
        raise DataError(
            f"download of {url} failed: HTTP {status} {exc.reason}. Check the URL in params "
            "(and whether the site needs registration or a login)."
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retryable(f"{type(exc).__name__}: {reason}") from exc

    with response:
        status = response.status
        length = _int_header(response.headers.get("Content-Length"))
        if status == 206 and offset:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start is not None and start != offset:
                part.unlink()
                raise _Retryable(f"server resumed at byte {start} instead of {offset}; starting over")
            if total is None and length is not None:
                total = offset + length
            mode = "ab"
        elif 200 <= status < 300 and status != 206:
            if offset:
                log.info("%s ignores Range requests: downloading %s from the start", url, label)
            offset, total, mode = 0, length, "wb"
        else:
            raise DataError(f"download of {url} failed: unexpected HTTP {status} "
                            f"({'partial content without a Range request' if status == 206 else 'status'}); "
                            f"delete {part} and run again")

        received = offset
        try:
            with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                             unit_divisor=1024, desc=label, disable=not progress, leave=False) as bar:
                while True:
                    try:
                        chunk = response.read(chunk_bytes)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Retryable(f"{type(exc).__name__} after {received} bytes: {exc}") from exc
                    if not chunk:
                        break
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except OSError as exc:  # local disk trouble, not the network
            raise DataError(f"cannot write {part}: {exc}; free disk space or fix permissions and run again") from exc

    if total is not None and received < total:
        raise _Retryable(f"connection closed after {received} of {total} bytes")
