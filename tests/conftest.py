"""Shared test helpers: a loopback HTTP file server with Range support and switchable misbehaviour;
tiny synthetic scenes and a briefly pretrained network for the model and protocol tests."""

from __future__ import annotations

import email.utils
import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest


# --------------------------------------------------------------------------------------------
# A tiny file server: Range support plus switchable misbehaviour
# --------------------------------------------------------------------------------------------
def _etag_for(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


@dataclass
class ServerState:
    root: Path
    base_url: str = ""
    requests: list[dict] = field(default_factory=list)  # {"path", "range", "if_range", "status"} per request
    drop_after: int | None = None  # first request: close the connection after this many body bytes
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    fail_first: int = 0  # answer 503 to this many requests first
    etag: bool = False  # send a strong ETag derived from the file's bytes (so it changes with them)
    last_modified: bool = False  # send Last-Modified from the file's mtime
    honour_if_range: bool = True  # If-Range not matching the current ETag/Last-Modified -> 200, whole file
    # Called with the request's number (1-based) before it is answered: lets a test change the
    # served files between attempts.
    on_request: Callable[[int], None] | None = None
    announce_extra: int = 0  # claim the file is this many bytes longer than it is (sizes, ranges, 416)
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    trailing: bytes = b""  # junk sent after the body (seen by the client only without Content-Length)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def etag_of(self, name: str) -> str:
        """The ETag the server sends for ``name`` now (when ``etag`` is on)."""
        return _etag_for((self.root / name).read_bytes())

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


class _Handler(http.server.BaseHTTPRequestHandler):
    state: ServerState  # set on a per-server subclass

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        st = self.state
        with st.lock:
            st.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                "if_range": self.headers.get("If-Range"), "status": None})
            n = len(st.requests)
            record = st.requests[-1]
        if st.on_request is not None:
            st.on_request(n)
        if n <= st.fail_first:
            record["status"] = 503
            self._empty(503)
            return
        path = st.root / self.path.lstrip("/")
        if not path.is_file():
            record["status"] = 404
            self._empty(404)
            return
        data = path.read_bytes()
        size = len(data) + st.announce_extra  # what the server believes the file's size is
        validators = {}
        if st.etag:
            validators["ETag"] = _etag_for(data)
        if st.last_modified:
            validators["Last-Modified"] = email.utils.formatdate(path.stat().st_mtime, usegmt=True)
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if_range = self.headers.get("If-Range")
        if m and not st.ignore_range and (if_range is None or not st.honour_if_range
                                          or if_range in validators.values()):
            start = int(m.group(1))
            if start >= size:
                record["status"] = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                for key, value in validators.items():
                    self.send_header(key, value)
                self.end_headers()
                return
            status = 206
        record["status"] = status
        body = data[start:]
        self.send_response(status)
        if st.send_length:
            self.send_header("Content-Length", str(size - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        for key, value in validators.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "none" if st.ignore_range else "bytes")
        self.end_headers()
        if n == st.fail_first + 1 and st.drop_after is not None:
            self.wfile.write(body[: st.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body + st.trailing)

    def _empty(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture()
def file_server(tmp_path):
    """Serves files written into ``state.root`` on 127.0.0.1 (never another address)."""
    root = tmp_path / "served"
    root.mkdir()
    state = ServerState(root=root)
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()




# --------------------------------------------------------------------------------------------
# Tiny synthetic scenes and a briefly pretrained network (imported: ``from conftest import ...``)
# --------------------------------------------------------------------------------------------
SCENE_PALETTE = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]])


def toy_scene(rng: np.random.Generator, size: int = 96, *, noise: float = 40.0, border_patch: bool = False,
              ignore_rows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` image and label of three colour-coded regions with Gaussian noise.

    ``border_patch`` adds a small class-2 patch at the right border, ``ignore_rows`` marks that many
    top rows as ignore (255). ``rng`` is drawn in a fixed order, so a seed gives the same scene in
    every test file that asks for the same options.
    """
    label = np.zeros((size, size), np.uint8)
    a, b = rng.integers(size // 4, 3 * size // 4, 2)
    label[:, a:] = 1
    label[b:, : a // 2] = 2
    if border_patch:
        r = rng.integers(0, size - 12)
        label[r : r + 12, -20:] = 2
    image = np.clip(SCENE_PALETTE[label] + rng.normal(0, noise, (size, size, 3)), 0, 255).astype(np.uint8)
    label[:ignore_rows] = 255
    return image, label


def briefly_pretrained(scenes: list[tuple[np.ndarray, np.ndarray]], n_classes: int):
    """LinkNet-ResNet18 after one short epoch on ``scenes``: imperfect, so there are mistakes to click."""
    import torch

    from dial_core.models.segmenter import NetworkSpec
    from dial_core.training.crops import ClickPolicy, CropSource
    from dial_core.training.pretrain import PretrainConfig, pretrain

    source = CropSource.from_arrays([p[0] for p in scenes], [p[1] for p in scenes])
    spec = NetworkSpec("linknet", "resnet18", n_classes, encoding="dt", radius=5.0)
    policy = ClickPolicy(0.7, 5, np.ones(n_classes), spec.click_encoder())
    cfg = PretrainConfig(epochs=1, crops_per_epoch=8, crop_size=64, batch_size=4, lr=0.01, momentum=0.9,
                         weight_decay=5e-4, milestones=(), gamma=0.1, checkpoint_every=1, seed=0)
    net, _ = pretrain(spec, source, policy, cfg, torch.device("cpu"))
    return net


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module of tiny forwards: on a shared 2-core machine two
    threads make them up to ~10x slower (OpenMP oversubscription). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
