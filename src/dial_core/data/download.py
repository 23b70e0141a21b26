"""Resumable, checksum-verified downloads for the explicit download rules.

Why this shape: dataset archives are several GB each and the servers hosting them drop
connections; a restarted job must continue where the last one stopped (HTTP ``Range``), never
trust a half-transferred file, and never destroy bytes a user may want to inspect.

* Bytes go to ``<dest>.part``; only a verified file is renamed (atomically) to ``dest``.
* A resumed ``.part`` must hold the same version of the file the server has now. The response that
  started it is recorded beside it in ``<dest>.part.json`` (URL, ETag, Last-Modified, size);
  a resume sends ``Range`` with ``If-Range`` and checks the answer (``Content-Range`` start and
  total, validators). Anything that does not match -- no record, a changed file, a server that
  ignores ranges -- restarts from byte zero with a log line; bytes are never spliced.
* With a checksum, the checksum decides; a mismatch keeps the bytes as ``<dest>.mismatch`` and
  raises :class:`DataError`. Without one, the size must equal the server's ``Content-Length``
  (``Content-Range`` total for a 206); a short or long file is a DataError, never renamed.
* Network failures (refused/reset connections, timeouts, short reads, HTTP 5xx/408/429) are
  retried with exponential back-off; other 4xx fail at once.

Only the standard library is used for HTTP (``urllib.request``); progress is shown with tqdm.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NoReturn

from tqdm.auto import tqdm

from dial_core.atomic import write_json
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
# The record beside a .part: which version of the file its bytes belong to
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PartRecord:
    """What the response that started ``<dest>.part`` said about the file (``<dest>.part.json``)."""

    url: str
    etag: str | None
    last_modified: str | None
    total: int | None  # the whole file's size, when the server said it

    @property
    def validator(self) -> str | None:
        """The value for ``If-Range``: a strong ETag, else Last-Modified (a weak ETag may not be used)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def changed(self, etag: str | None, last_modified: str | None) -> str | None:
        """Why the server's current validators say the file is another version, or None."""
        if self.etag and etag and etag != self.etag:
            return f"its ETag changed from {self.etag} to {etag}"
        if self.last_modified and last_modified and last_modified != self.last_modified:
            return f"its Last-Modified changed from {self.last_modified} to {last_modified}"
        return None


def _record_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _load_record(part: Path) -> _PartRecord | None:
    """The record beside ``part``, or None when it is missing or unreadable (then ``part`` restarts)."""
    try:
        raw = json.loads(_record_path(part).read_text(encoding="utf-8"))
        record = _PartRecord(url=raw["url"], etag=raw["etag"], last_modified=raw["last_modified"], total=raw["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(record.url, str) or not (record.total is None or isinstance(record.total, int)):
        return None
    return record


def _save_record(part: Path, record: _PartRecord) -> None:
    """Write the record atomically (temp file, then rename): a killed job leaves the old one or the new one."""
    write_json(_record_path(part), asdict(record))


def _restart(part: Path, url: str, why: str) -> None:
    """Drop ``part`` and its record: the next request downloads the whole file."""
    log.info("download of %s: restarting %s from zero: %s", url, part.name, why)
    _record_path(part).unlink(missing_ok=True)  # record first: a .part without a record is never resumed
    part.unlink(missing_ok=True)


def _discard(part: Path) -> None:
    _record_path(part).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------
def download(url: str, dest: Path, checksum: str | None, *, retries: int = 5, backoff_s: float = 1.0,
             timeout_s: float = 60.0, chunk_bytes: int = 1 << 20, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` and verifying ``checksum``.

    Returns ``dest``. An existing ``dest`` that matches ``checksum`` (or any existing ``dest`` when
    ``checksum`` is None) is returned without a request. ``retries`` counts repeated attempts
    after the first; the counter starts again after an attempt that added bytes, so a flaky
    multi-GB transfer that keeps progressing is not abandoned. Without ``checksum`` the file's
    size is checked against the size the server announced.
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
            _attempt(url, part, checksum_given=expected is not None, timeout_s=timeout_s, chunk_bytes=chunk_bytes,
                     progress=progress, label=dest.name)
            break
        except _Retryable as exc:
            if _size(part) > size_before:
                failures = 0  # progress was made: this is a flaky line, not a dead server
            if failures >= retries:
                kept = f"; the {_size(part)} bytes received so far are kept in {part} and a new run resumes" \
                    if _size(part) else ""
                raise DataError(
                    f"download of {url} to {dest} failed after {failures + 1} attempt(s): {exc}{kept}. "
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
            _reject(part, dest, url, f"does not match its checksum: expected {algorithm}:{want}, actual {algorithm}:{actual}",
                    "if the source changed, update the checksum in params")
    else:
        record = _load_record(part)
        total, size = (record.total if record else None), _size(part)
        if total is None:
            log.warning("%s did not say how large %s is (no Content-Length): a cut transfer cannot be told from a "
                        "complete one; give the file's checksum in params to verify it", url, dest)
        elif size != total:  # a backstop: the transfer logic should have retried or restarted already
            _reject(part, dest, url, f"has the wrong size: expected {total} bytes (the size the server announced), "
                    f"received {size}", "give the file's checksum in params so that what is downloaded can be verified")
    os.replace(part, dest)
    _discard(part)
    return dest


def _reject(part: Path, dest: Path, url: str, fault: str, advice: str) -> NoReturn:
    """Move a finished download that failed verification to ``<dest>.mismatch`` and raise DataError.

    Why: the bytes never take ``dest``'s name, so no later job trusts them, yet they stay for
    inspection; the resume record is dropped, so the next run starts the download afresh.
    ``fault`` says what is wrong with the file, ``advice`` what to do besides deleting it.
    """
    bad = dest.with_name(dest.name + ".mismatch")
    os.replace(part, bad)
    _discard(part)
    raise DataError(f"{dest.name} downloaded from {url} {fault}. The bytes are kept as {bad} for inspection. "
                    f"Delete {bad} and run again; {advice}.")


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


def _resumable(part: Path, url: str, offset: int, checksum_given: bool) -> _PartRecord | None:
    """The record to resume ``part`` with, or None after restarting it (the reason is logged)."""
    record = _load_record(part)
    if record is None:
        why = (f"it has no readable record {_record_path(part).name} of the version of the file its "
               f"{offset} bytes came from, so they cannot be matched to what the server has now")
    elif record.url != url:
        why = f"its bytes came from {record.url}"
    elif record.total is not None and offset > record.total:
        why = f"it has {offset} bytes but the file had {record.total}"
    elif record.validator is None and not checksum_given:
        why = ("the server sent no ETag or Last-Modified, so a change of the file between two attempts cannot "
               "be detected, and there is no checksum to catch a mix of two versions")
    else:
        return record
    _restart(part, url, why)
    return None


def _attempt(url: str, part: Path, *, checksum_given: bool, timeout_s: float, chunk_bytes: int, progress: bool,
             label: str) -> None:
    """One request: append to (206, same version) or rewrite (200) ``part``; raise _Retryable on transient failure."""
    offset = _size(part)
    record = _resumable(part, url, offset, checksum_given) if offset else None
    if record is None:
        offset = 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if record is not None:
        headers["Range"] = f"bytes={offset}-"
        if record.validator:
            headers["If-Range"] = record.validator  # a changed file comes back whole (200), not as a range
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 (scheme checked)
    except urllib.error.HTTPError as exc:
        status, reason, exc_headers = exc.code, exc.reason, exc.headers
        exc.close()
        if status == 416 and record is not None:
            _, total = _content_range(exc_headers.get("Content-Range") if exc_headers else None)
            changed = record.changed(exc_headers.get("ETag"), exc_headers.get("Last-Modified")) if exc_headers else None
            sizes = [t for t in (total, record.total) if t is not None]
            if changed is None and sizes and all(t == offset for t in sizes):
                if record.total is None:
                    _save_record(part, replace(record, total=offset))
                return  # the part is complete and still the server's version
            why = changed or (f"{part.name} has {offset} bytes but the server's file has "
                              f"{total if total is not None else 'an unknown number of'} bytes")
            _restart(part, url, f"HTTP 416 to a resume: {why}")
            raise _Retryable(f"HTTP 416: {why}; starting over") from exc
        if status >= 500 or status in _RETRY_STATUS:
            raise _Retryable(f"HTTP {status} {reason}") from exc
        raise DataError(
            f"download of {url} failed: HTTP {status} {reason}. Check the URL in params "
            "(and whether the site needs registration or a login)."
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retryable(f"{type(exc).__name__}: {reason}") from exc

    with response:
        status = response.status
        length = _int_header(response.headers.get("Content-Length"))
        etag, last_modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if status == 206 and record is not None:
            start, total = _content_range(response.headers.get("Content-Range"))
            if total is None and length is not None and start in (None, offset):
                total = offset + length
            why = None
            if start is not None and start != offset:
                why = f"the server resumed at byte {start} instead of {offset}"
            elif changed := record.changed(etag, last_modified):
                why = f"the file changed on the server ({changed}) although the range was answered"
            elif record.total is not None and total is not None and total != record.total:
                why = f"the file on the server now has {total} bytes, not {record.total} as when {part.name} began"
            if why:
                _restart(part, url, why)
                raise _Retryable(f"{why}; starting over")
            if record.total is None and total is not None:
                record = replace(record, total=total)
                _save_record(part, record)
            total = record.total
            mode = "ab"
        elif 200 <= status < 300 and status != 206:
            if record is not None:
                changed = record.changed(etag, last_modified)
                why = (f"the file changed on the server ({changed})" if changed else
                       "the server answered with the whole file (the file changed since the If-Range "
                       "validator was recorded, or the server ignores Range requests)" if record.validator else
                       "the server ignores Range requests")
                log.info("download of %s: restarting %s from zero: %s", url, part.name, why)
            offset, total, mode = 0, length, "wb"
            record = _PartRecord(url=url, etag=etag, last_modified=last_modified, total=length)
            _discard(part)  # no record while the old bytes may still be there
        else:
            raise DataError(f"download of {url} failed: unexpected HTTP {status} "
                            f"({'partial content without a Range request' if status == 206 else 'status'}); "
                            f"delete {part} and run again")

        received = offset
        overrun = False
        try:
            with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                             unit_divisor=1024, desc=label, disable=not progress, leave=False) as bar:
                if mode == "wb":
                    _save_record(part, record)  # the part is empty now: record which version it will hold
                while True:
                    try:
                        chunk = response.read(chunk_bytes)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Retryable(f"{type(exc).__name__} after {received} bytes: {exc}") from exc
                    if not chunk:
                        break
                    if total is not None and received + len(chunk) > total:
                        overrun = True  # never write past the size the transfer announced
                        break
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except OSError as exc:  # local disk trouble, not the network
            raise DataError(f"cannot write {part}: {exc}; free disk space or fix permissions and run again") from exc

    if overrun:
        why = f"the server sent more than the {total} bytes it announced for the file"
        _restart(part, url, why)
        raise _Retryable(f"{why} (expected {total} bytes); starting over")
    if total is not None and received < total:
        raise _Retryable(f"connection closed after receiving {received} of the {total} bytes announced")
