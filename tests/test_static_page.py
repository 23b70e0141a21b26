"""The static page of `dial serve`: Leaflet vendored from npm at the pinned version, and a page that
loads nothing from another host (no CDN at run time) and references only files that ship."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "dial_core" / "app" / "static"
VENDOR = STATIC / "vendor" / "leaflet"


class _Refs(HTMLParser):
    """Every src= and href= of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]


def _refs() -> list[str]:
    parser = _Refs()
    parser.feed((STATIC / "index.html").read_text())
    return parser.refs


def test_vendored_leaflet_is_the_pinned_version() -> None:
    pin = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]["leaflet"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pin), f"web/package.json: pin leaflet exactly, not {pin!r}"
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/leaflet"]["version"] == pin, "web/package-lock.json: run npm install in web/"
    banner = re.search(r"Leaflet (\d+\.\d+\.\d+)", (VENDOR / "leaflet.js").read_text()[:300])
    assert banner and banner.group(1) == pin, "the vendored leaflet.js is not the pinned version: run web/vendor.sh"
    for name in ("leaflet.css", "LICENSE", "images/layers.png", "images/marker-icon.png"):
        assert (VENDOR / name).is_file(), f"{name} missing from the vendored Leaflet: run web/vendor.sh"


def test_page_loads_nothing_from_another_host() -> None:
    text = "\n".join((STATIC / name).read_text() for name in ("index.html", "app.js", "app.css"))
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), "the page must not load from another host"
    for ref in _refs():
        assert ref.startswith("/") and not ref.startswith("//") or ref == "data:,", f"index.html: {ref!r} is not a local URL"


def test_every_file_the_page_references_exists() -> None:
    refs = _refs()
    assert "/static/vendor/leaflet/leaflet.js" in refs and "/static/app.js" in refs
    for ref in refs:
        if ref.startswith("/static/"):  # the server mounts the static folder at /static
            assert (STATIC / ref.removeprefix("/static/")).is_file(), f"index.html references {ref}, which does not exist"
        else:
            assert ref.startswith("/api/export/") or ref == "data:,", f"index.html: unexpected reference {ref!r}"


def test_static_files_are_package_data() -> None:
    """pip install ships the page: each static file matches a package-data pattern of dial_core.app."""
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dial_core.app"]
    base = STATIC.parent
    for path in STATIC.rglob("*"):
        if path.is_file():
            rel = path.relative_to(base)
            assert any(rel.match(p) and len(rel.parts) == len(Path(p).parts) for p in patterns), f"{rel} is not package data"
