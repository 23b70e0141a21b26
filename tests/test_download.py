"""Tests for dial_core.data.download against a local (127.0.0.1) HTTP server with Range support."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest

from dial_core.data import download as dl
from dial_core.data.download import download, file_checksum, parse_checksum, read_checksum_file
from dial_core.errors import DataError

PAYLOAD = np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
NEW = np.random.default_rng(8).integers(0, 256, len(PAYLOAD), dtype=np.uint8).tobytes()  # a new version, same size


@pytest.fixture()
def server(file_server):
    (file_server.root / "data.bin").write_bytes(PAYLOAD)
    (file_server.root / "other.bin").write_bytes(b"another verified file\n" * 100)
    return file_server


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _record(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.json")


@pytest.fixture()
def sleeps(monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(dl, "_sleep", calls.append)
    return calls


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------
def test_download_sha256(server, tmp_path):
    dest = tmp_path / "out" / "data.bin"
    assert download(server.url("data.bin"), dest, f"sha256:{SHA256}", progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("data.bin.part").exists()
    assert server.count() == 1 and server.requests[0]["range"] is None


def test_download_md5_bare_hex_with_progress_bar(server, tmp_path):
    dest = tmp_path / "data.bin"
    download(server.url("data.bin"), dest, MD5, progress=True, chunk_bytes=64 * 1024)
    assert dest.read_bytes() == PAYLOAD


def test_present_and_verified_file_makes_no_request(server, tmp_path):
    dest = tmp_path / "data.bin"
    download(server.url("data.bin"), dest, f"sha256:{SHA256}", progress=False)
    before = server.count()
    download(server.url("data.bin"), dest, f"md5:{MD5}", progress=False)
    download(server.url("data.bin"), dest, None, progress=False)  # no checksum: existing file is used
    assert server.count() == before == 1


def test_present_file_with_wrong_checksum_is_reported_not_replaced(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    with pytest.raises(DataError, match=r"data\.bin exists but does not match") as err:
        download(server.url("data.bin"), dest, f"sha256:{SHA256}", progress=False)
    assert SHA256 in str(err.value) and "delete" in str(err.value)
    assert server.count() == 0 and dest.read_bytes() == b"stale"


def test_resume_after_interrupted_transfer(server, tmp_path, sleeps):
    server.drop_after = 100_000
    dest = tmp_path / "data.bin"
    download(server.url("data.bin"), dest, f"sha256:{SHA256}", progress=False, chunk_bytes=16 * 1024)
    assert dest.read_bytes() == PAYLOAD
    assert server.count() == 2
    assert server.requests[0]["range"] is None
    assert server.requests[1]["range"] == "bytes=100000-"
    assert len(sleeps) == 1


def test_resume_from_part_left_by_a_failed_run(server, tmp_path):
    """A run that gave up keeps its bytes and their record; the next run resumes with If-Range."""
    server.etag = True
    server.drop_after = 100_000
    dest = tmp_path / "data.bin"
    with pytest.raises(DataError, match="100000 of the 300000 bytes"):
        download(server.url("data.bin"), dest, None, retries=0, progress=False)
    assert _part(dest).stat().st_size == 100_000 and _record(dest).exists() and not dest.exists()
    download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [(r["range"], r["if_range"], r["status"]) for r in server.requests] == [
        (None, None, 200), ("bytes=100000-", server.etag_of("data.bin"), 206)]
    assert not _part(dest).exists() and not _record(dest).exists()


def test_complete_part_answered_416_is_verified(server, tmp_path):
    """A job killed after the last byte but before the rename: the server confirms the part is whole."""
    server.etag = True
    dest = tmp_path / "data.bin"
    _part(dest).write_bytes(PAYLOAD)
    dl._save_record(_part(dest), dl._PartRecord(server.url("data.bin"), server.etag_of("data.bin"), None, len(PAYLOAD)))
    download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [(r["range"], r["status"]) for r in server.requests] == [(f"bytes={len(PAYLOAD)}-", 416)]


def test_server_without_range_support_restarts_not_appends(server, tmp_path, sleeps, caplog):
    server.ignore_range = True
    server.etag = True
    server.drop_after = 100_000
    dest = tmp_path / "data.bin"
    with caplog.at_level("INFO", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)  # no checksum: appending would go unseen
    assert dest.read_bytes() == PAYLOAD
    assert [(r["range"], r["status"]) for r in server.requests] == [(None, 200), ("bytes=100000-", 200)]
    assert "restarting data.bin.part from zero" in caplog.text


def test_part_without_record_restarts_from_zero(server, tmp_path, caplog):
    """A .part of unknown origin (no record beside it) is never appended to."""
    dest = tmp_path / "data.bin"
    _part(dest).write_bytes(b"\x00" * 5000)
    with caplog.at_level("INFO", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None]
    assert "restarting data.bin.part from zero" in caplog.text and "no readable record" in caplog.text


def test_part_with_unreadable_record_restarts_from_zero(server, tmp_path):
    server.etag = True
    dest = tmp_path / "data.bin"
    _part(dest).write_bytes(PAYLOAD[:5000])
    _record(dest).write_text("{not json")
    download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD and [r["range"] for r in server.requests] == [None]


def test_part_recorded_for_another_url_restarts(server, tmp_path, caplog):
    server.etag = True
    dest = tmp_path / "data.bin"
    _part(dest).write_bytes(b"\x00" * 5000)
    dl._save_record(_part(dest), dl._PartRecord(server.url("old.bin"), server.etag_of("data.bin"), None, len(PAYLOAD)))
    with caplog.at_level("INFO", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD and [r["range"] for r in server.requests] == [None]
    assert "old.bin" in caplog.text


def _replace_on(server, request: int, data: bytes, mtime: float | None = None):
    """Change data.bin on the server just before request number ``request`` is answered."""
    def hook(n: int) -> None:
        if n == request:
            path = server.root / "data.bin"
            path.write_bytes(data)
            if mtime is not None:
                os.utime(path, (mtime, mtime))
    server.on_request = hook


def test_file_changed_between_attempts_is_downloaded_whole_not_spliced(server, tmp_path, sleeps, caplog):
    """ETag changes after a dropped first attempt: If-Range makes the server send the new file whole."""
    server.etag = True
    server.drop_after = 100_000
    old_etag = server.etag_of("data.bin")
    _replace_on(server, 2, NEW)  # same size: a size check alone would not see a splice
    dest = tmp_path / "data.bin"
    with caplog.at_level("INFO", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == NEW
    assert [(r["range"], r["if_range"], r["status"]) for r in server.requests] == [
        (None, None, 200), ("bytes=100000-", old_etag, 200)]
    assert "restarting data.bin.part from zero" in caplog.text


def test_file_changed_and_server_ignores_if_range(server, tmp_path, sleeps, caplog):
    """The server answers the range of the new version (206) with a new ETag: restart, not append."""
    server.etag = True
    server.honour_if_range = False
    server.drop_after = 100_000
    _replace_on(server, 2, NEW)
    dest = tmp_path / "data.bin"
    with caplog.at_level("INFO", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == NEW
    assert [(r["range"], r["status"]) for r in server.requests] == [(None, 200), ("bytes=100000-", 206), (None, 200)]
    assert "ETag changed" in caplog.text


def test_file_changed_detected_by_last_modified(server, tmp_path, sleeps):
    server.last_modified = True
    server.drop_after = 100_000
    os.utime(server.root / "data.bin", (1_600_000_000, 1_600_000_000))
    _replace_on(server, 2, NEW, mtime=1_700_000_000)
    dest = tmp_path / "data.bin"
    download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == NEW
    assert server.requests[1]["if_range"] == "Sun, 13 Sep 2020 12:26:40 GMT"  # the first version's date
    assert server.requests[1]["status"] == 200


def test_size_change_without_validators_restarts(server, tmp_path, sleeps):
    """No ETag/Last-Modified: a resume is allowed only under a checksum, and a new total restarts it."""
    bigger = NEW + b"tail" * 1000
    server.drop_after = 100_000
    _replace_on(server, 2, bigger)
    dest = tmp_path / "data.bin"
    download(server.url("data.bin"), dest, f"sha256:{hashlib.sha256(bigger).hexdigest()}", progress=False)
    assert dest.read_bytes() == bigger
    assert [(r["range"], r["status"]) for r in server.requests] == [(None, 200), ("bytes=100000-", 206), (None, 200)]


def test_no_validator_and_no_checksum_restarts_instead_of_resuming(server, tmp_path, sleeps, caplog):
    server.drop_after = 100_000
    dest = tmp_path / "data.bin"
    with caplog.at_level("INFO", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, None]
    assert "no ETag or Last-Modified" in caplog.text


def test_no_checksum_short_file_is_an_error(server, tmp_path, sleeps):
    """The server announces 1000 bytes more than it ever sends: after the retries, an error, no file."""
    server.etag = True
    server.announce_extra = 1000
    url, dest = server.url("data.bin"), tmp_path / "data.bin"
    with pytest.raises(DataError) as err:
        download(url, dest, None, retries=2, progress=False)
    msg = str(err.value)
    assert url in msg and str(dest) in msg and "run again" in msg
    assert f"{len(PAYLOAD)} of the {len(PAYLOAD) + 1000} bytes" in msg
    assert not dest.exists() and _part(dest).stat().st_size == len(PAYLOAD)
    assert [r["status"] for r in server.requests] == [200, 206, 206]


def test_no_checksum_response_longer_than_announced_restarts(server, tmp_path, sleeps, caplog):
    """A resumed answer that runs past the announced total (no Content-Length, junk after the range)
    is never appended: the file restarts, and a clean answer gives the exact file."""
    server.etag = True
    server.drop_after = 100_000

    def hook(n: int) -> None:
        server.send_length, server.trailing = (False, b"<html>proxy error</html>") if n == 2 else (True, b"")
    server.on_request = hook
    dest = tmp_path / "data.bin"
    with caplog.at_level("INFO", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [(r["range"], r["status"]) for r in server.requests] == [(None, 200), ("bytes=100000-", 206), (None, 200)]
    assert "more than the 300000 bytes" in caplog.text


def test_no_checksum_response_longer_than_announced_is_an_error(server, tmp_path, sleeps):
    server.etag = True
    server.drop_after = 100_000

    def hook(n: int) -> None:
        server.send_length, server.trailing = (False, b"junk") if n == 2 else (True, b"")
    server.on_request = hook
    url, dest = server.url("data.bin"), tmp_path / "data.bin"
    with pytest.raises(DataError, match="more than the 300000 bytes") as err:
        download(url, dest, None, retries=1, progress=False)
    assert url in str(err.value) and str(dest) in str(err.value)
    assert not dest.exists() and not _part(dest).exists()


def test_size_backstop_moves_a_wrong_sized_file_aside(server, tmp_path, monkeypatch):
    """If a transfer ever ended with the wrong size, the file would be reported, not renamed into place."""
    dest = tmp_path / "data.bin"
    real = dl._attempt

    def attempt_then_grow(url, part, **kwargs):
        real(url, part, **kwargs)
        with open(part, "ab") as f:
            f.write(b"x")
    monkeypatch.setattr(dl, "_attempt", attempt_then_grow)
    with pytest.raises(DataError) as err:
        download(server.url("data.bin"), dest, None, progress=False)
    msg = str(err.value)
    assert f"expected {len(PAYLOAD)} bytes" in msg and f"received {len(PAYLOAD) + 1}" in msg
    assert server.url("data.bin") in msg and "data.bin" in msg and "checksum" in msg
    assert not dest.exists() and (tmp_path / "data.bin.mismatch").stat().st_size == len(PAYLOAD) + 1


def test_retries_on_503_then_succeeds(server, tmp_path, sleeps):
    server.fail_first = 2
    dest = tmp_path / "data.bin"
    download(server.url("data.bin"), dest, f"sha256:{SHA256}", progress=False, backoff_s=0.5)
    assert dest.read_bytes() == PAYLOAD
    assert server.count() == 3
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_retries(server, tmp_path, sleeps):
    server.fail_first = 1000
    url = server.url("data.bin")
    with pytest.raises(DataError, match="503") as err:
        download(url, tmp_path / "data.bin", f"sha256:{SHA256}", retries=2, progress=False)
    assert url in str(err.value)
    assert server.count() == 3 and sleeps == [1.0, 2.0]
    assert not (tmp_path / "data.bin").exists()


def test_connection_refused_is_retried_then_reported(tmp_path, sleeps):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.bin"
    with pytest.raises(DataError, match=re.escape(url)):
        download(url, tmp_path / "data.bin", None, retries=1, timeout_s=2, progress=False)
    assert sleeps == [1.0]


def test_404_fails_at_once(server, tmp_path, sleeps):
    url = server.url("missing.bin")
    with pytest.raises(DataError, match="404") as err:
        download(url, tmp_path / "missing.bin", f"sha256:{SHA256}", progress=False)
    assert url in str(err.value)
    assert server.count() == 1 and sleeps == []


def test_checksum_mismatch_keeps_bytes_and_other_files(server, tmp_path):
    folder = tmp_path / "raw"
    other_sum = hashlib.sha256((server.root / "other.bin").read_bytes()).hexdigest()
    other = download(server.url("other.bin"), folder / "other.bin", f"sha256:{other_sum}", progress=False)
    other_stat = other.stat()
    wrong = "0" * 64
    dest = folder / "data.bin"
    with pytest.raises(DataError) as err:
        download(server.url("data.bin"), dest, f"sha256:{wrong}", progress=False)
    msg = str(err.value)
    assert wrong in msg and SHA256 in msg and "data.bin" in msg and server.url("data.bin") in msg
    assert "update the checksum in params" in msg
    assert (folder / "data.bin.mismatch").read_bytes() == PAYLOAD
    assert not dest.exists() and not (folder / "data.bin.part").exists()
    assert other.stat().st_mtime_ns == other_stat.st_mtime_ns
    assert file_checksum(other) == other_sum


def test_no_checksum_downloads_with_warning(server, tmp_path, caplog):
    dest = tmp_path / "data.bin"
    with caplog.at_level("WARNING", logger="dial_core.data.download"):
        download(server.url("data.bin"), dest, None, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert "without a checksum" in caplog.text


def test_bad_inputs_fail_before_any_request(server, tmp_path):
    with pytest.raises(DataError, match="sha256"):
        download(server.url("data.bin"), tmp_path / "x", "sha256:1234", progress=False)
    with pytest.raises(DataError, match="only http"):
        download("ftp://127.0.0.1/data.bin", tmp_path / "x", None, progress=False)
    assert server.count() == 0


# --------------------------------------------------------------------------------------------
# Checksum helpers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "expected"), [
    (f"sha256:{SHA256}", ("sha256", SHA256)),
    (f"SHA256:{SHA256.upper()}", ("sha256", SHA256)),
    (f"md5:{MD5}", ("md5", MD5)),
    (SHA256, ("sha256", SHA256)),
    (f"  {MD5}\n", ("md5", MD5)),
])
def test_parse_checksum(spec, expected):
    assert parse_checksum(spec) == expected


@pytest.mark.parametrize("spec", ["", "abc", f"sha1:{SHA256[:40]}", f"md5:{SHA256}", f"sha256:{MD5}",
                                  "z" * 64, f"sha256:{SHA256[:-1]}g"])
def test_parse_checksum_rejects(spec):
    with pytest.raises(DataError):
        parse_checksum(spec)


def test_file_checksum(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(PAYLOAD)
    assert file_checksum(p) == SHA256 and file_checksum(p, "md5") == MD5
    with pytest.raises(DataError, match="not found"):
        file_checksum(tmp_path / "nope")


def test_read_checksum_file(tmp_path):
    text = (f"# checksums\n{SHA256}  aerialimagelabeling.7z.001\n{MD5} *NEW2-AerialImageDataset.zip\n"
            f"SHA256 (bsd.bin) = {SHA256.upper()}\n{'1' * 64}  sub/dir/nested.tif\n")
    assert read_checksum_file(text, "aerialimagelabeling.7z.001") == f"sha256:{SHA256}"
    assert read_checksum_file(text, "NEW2-AerialImageDataset.zip") == f"md5:{MD5}"
    assert read_checksum_file(text, "bsd.bin") == f"sha256:{SHA256}"
    assert read_checksum_file(text, "nested.tif") == f"sha256:{'1' * 64}"
    listing = tmp_path / "SHA256SUMS"
    listing.write_text(text)
    assert read_checksum_file(listing, "aerialimagelabeling.7z.001") == f"sha256:{SHA256}"
    assert read_checksum_file(str(listing), "aerialimagelabeling.7z.001") == f"sha256:{SHA256}"
    with pytest.raises(DataError, match=r"SHA256SUMS has no checksum for 'absent\.7z\.002'"):
        read_checksum_file(listing, "absent.7z.002")
    with pytest.raises(DataError, match="different checksums"):
        read_checksum_file(f"{SHA256}  a.bin\n{'2' * 64}  a.bin\n", "a.bin")
