"""Shared fixtures: a loopback HTTP file server with Range support and switchable misbehaviour."""

from __future__ import annotations

import http.server
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest


# --------------------------------------------------------------------------------------------
# A tiny file server: Range support plus switchable misbehaviour
# --------------------------------------------------------------------------------------------
@dataclass
class ServerState:
    root: Path
    base_url: str = ""
    requests: list[dict] = field(default_factory=list)
    drop_after: int | None = None  # first request: close the connection after this many body bytes
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    fail_first: int = 0  # answer 503 to this many requests first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

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
            st.requests.append({"path": self.path, "range": self.headers.get("Range")})
            n = len(st.requests)
        if n <= st.fail_first:
            self._empty(503)
            return
        path = st.root / self.path.lstrip("/")
        if not path.is_file():
            self._empty(404)
            return
        data = path.read_bytes()
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and not st.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "none" if st.ignore_range else "bytes")
        self.end_headers()
        if n == st.fail_first + 1 and st.drop_after is not None:
            self.wfile.write(body[: st.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

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


