"""`dial serve` in a real headless Chromium: the page loads, clicks of two classes correct the map, undo
and redo, guidance and the uncertainty layer show, and the three exports are what QGIS and the
workflow read (a GeoTIFF on the image's grid with a colour table, the `human` agent's click log,
polygons).

Runs the real server (`python -m dial_core.app.cli serve`) as a subprocess on a free loopback port
and Debian's `chromium` driven by Playwright for Python through `executable_path` (Playwright's own
browser download is not reachable). A missing chromium fails the test with the fix; .ci/run installs
it. The screenshot `reports/figures/serve_page.png` is left for people to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from cli_support import CLASSES
from conftest import toy_scene

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "reports" / "figures" / "serve_page.png"
CRS_UTM = CRS.from_epsg(32631)
TRANSFORM = from_origin(500000.0, 4650000.0, 0.5, 0.5)
START_TIMEOUT = 180  # s: importing torch and predicting the whole image on a loaded 2-core machine
CHANGE_TIMEOUT = 120_000  # ms: one click's answer and its tiles


@dataclass
class Scene:
    image: Path
    label: np.ndarray
    georeferenced: bool
    labels: Path | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.label.shape


def _write_scene(path: Path, height: int, width: int, seed: int, georeferenced: bool) -> Scene:
    """A toy scene cropped to ``height`` x ``width`` (not square: rows and columns must not be swapped);
    the georeferenced one with its label raster (live mIoU)."""
    image, label = toy_scene(np.random.default_rng(seed), size=max(height, width))
    image, label = image[:height, :width], label[:height, :width]
    profile = {"driver": "GTiff", "height": height, "width": width, "count": 3, "dtype": "uint8"}
    if georeferenced:
        profile.update(crs=CRS_UTM, transform=TRANSFORM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the Dubai-like case: no grid, on purpose
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.moveaxis(image, -1, 0))
    if not georeferenced:
        return Scene(path, label, georeferenced)
    labels = path.with_name(f"{path.stem}_labels.tif")
    with rasterio.open(labels, "w", **{**profile, "count": 1}) as dst:
        dst.write(label, 1)
    return Scene(path, label, georeferenced, labels)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`dial serve` as a subprocess; its output goes to a log file that a failure quotes."""

    def __init__(self, scene: Scene, model: Path, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{scene.image.stem}.log"
        command = [sys.executable, "-m", "dial_core.app.cli", "serve", str(scene.image), "--model", str(model),
                   "--state", str(folder / f"{scene.image.stem}.dial"), "--port", str(self.port),
                   "--patch-size", "128", "--lr", "1e-4"]  # DISCA's learning rate: no calibration here
        if scene.labels is not None:
            command += ["--labels", str(scene.labels)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), cwd=folder)

    def wait(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"dial serve exited with {self.process.returncode}:\n{self.tail()}")
            try:
                return self.get("/api/info")
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"dial serve did not answer /api/info within {START_TIMEOUT} s:\n{self.tail()}")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:
            return json.loads(answer.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as answer:
            return answer.read()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("the browser test needs Debian's chromium on PATH: apt-get install -y chromium (.ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory, one_torch_thread) -> Path:
    """A LinkNet-R18 trained a little longer than the CLI tests' one (about 15 s): right on most of the
    scene, so a click visibly changes the map around it and the screenshot shows a sensible map."""
    import torch

    from dial_core.models.checkpoint import save_checkpoint
    from dial_core.models.segmenter import NetworkSpec, segmenter_state
    from dial_core.training.crops import ClickPolicy, CropSource
    from dial_core.training.pretrain import PretrainConfig, pretrain

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = [toy_scene(rng, size=128) for _ in range(4)]
    source = CropSource.from_arrays([image for image, _ in scenes], [label for _, label in scenes])
    spec = NetworkSpec("linknet", "resnet18", len(CLASSES), encoding="dt", radius=5.0)
    policy = ClickPolicy(0.7, 5, np.ones(len(CLASSES)), spec.click_encoder())
    config = PretrainConfig(epochs=4, crops_per_epoch=64, crop_size=64, batch_size=8, lr=0.01, momentum=0.9,
                            weight_decay=5e-4, milestones=(), gamma=0.1, checkpoint_every=4, seed=0)
    network, _ = pretrain(spec, source, policy, config, torch.device("cpu"))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, segmenter_state(network, CLASSES))
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # CI runs as root: Chromium's sandbox refuses root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True, args=args)
        yield browser
        browser.close()


# ------------------------------------------------------------------------------------------ helpers
def _read_tif(data: bytes) -> np.ndarray:
    with rasterio.MemoryFile(data) as memory, memory.open() as src:
        return src.read(1)


def _mistakes(scene: Scene, prediction: np.ndarray, classes: list[int]) -> list[tuple[int, int, int]]:
    """For each class, a pixel of that class (by the label) that the network got wrong, deep inside
    its region (a person clicks a mistake); the region's deepest pixel when there is none."""
    from scipy.ndimage import distance_transform_edt

    clicks = []
    for cls in classes:
        depth = distance_transform_edt(np.pad(scene.label == cls, 1))[1:-1, 1:-1]  # the border is not inside
        wrong = np.where(prediction != cls, depth, 0)
        pick = wrong if wrong.max() >= 3 else depth
        row, col = np.unravel_index(int(np.argmax(pick)), pick.shape)
        clicks.append((int(row), int(col), cls))
    return clicks


def _prediction_tiles(server: Server, info: dict) -> list[bytes]:
    """Every prediction tile at full resolution, as the server sends it."""
    z, size = info["max_zoom"], info["tile_size"]
    return [server.get_bytes(f"/api/tiles/prediction/{z}/{x}/{y}.png")
            for y in range(-(-info["height"] // size)) for x in range(-(-info["width"] // size))]


def _version(page) -> int:
    return int(page.evaluate("document.body.dataset.version"))


def _wait_version_above(page, version: int) -> int:
    page.wait_for_function("v => Number(document.body.dataset.version) > v", arg=version, timeout=CHANGE_TIMEOUT)
    return _version(page)


def _wait_tiles(page) -> None:
    """Every tile on the map loaded and faded in."""
    page.wait_for_function("""() => {
        const tiles = [...document.querySelectorAll('#map img.leaflet-tile')];
        return tiles.length > 0 && tiles.every(t => t.classList.contains('leaflet-tile-loaded') && t.complete);
    }""", timeout=CHANGE_TIMEOUT)
    page.wait_for_timeout(400)  # Leaflet's 200 ms fade-in


def _map_without_marks(page) -> np.ndarray:
    """The map as the user sees it, without click markers and the patch outline (they change anyway)."""
    from PIL import Image

    panes = "['.leaflet-overlay-pane', '.leaflet-marker-pane', '.leaflet-tooltip-pane', '.leaflet-control-container']"
    page.evaluate(f"{panes}.forEach(p => document.querySelector(p).style.visibility = 'hidden')")
    shot = page.locator("#map").screenshot()
    page.evaluate(f"{panes}.forEach(p => document.querySelector(p).style.visibility = '')")
    return np.asarray(Image.open(BytesIO(shot)).convert("RGB"))


def _click_pixel(page, row: int, col: int) -> None:
    """Click the centre of image pixel (row, col): map.unproject([col, row], Z) as the contract says."""
    x, y = page.evaluate("""([row, col]) => {
        const latlng = dial.map.unproject([col + 0.5, row + 0.5], dial.info.max_zoom);
        const p = dial.map.latLngToContainerPoint(latlng);
        return [p.x, p.y];
    }""", [row, col])
    page.locator("#map").click(position={"x": x, "y": y})


def _download(page, link: str, folder: Path) -> Path:
    with page.expect_download(timeout=CHANGE_TIMEOUT) as info:
        page.click(link)
    download = info.value
    assert download.failure() is None, f"{link}: {download.failure()}"
    path = folder / download.suggested_filename
    download.save_as(path)
    return path


# ------------------------------------------------------------------------------------------ the test
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the pixel-coordinate scene
@pytest.mark.parametrize("georeferenced", [True, False], ids=["geotiff", "pixel-coordinates"])
def test_page_clicks_undo_redo_and_exports(tmp_path, browser, model, georeferenced: bool) -> None:
    import geopandas as gpd

    from dial_core.clicks.click_log import read_click_log
    from dial_core.clicks.types import Click

    started = time.monotonic()
    # a 512 x 640 UTM scene, or (like a Dubai tile) a smaller one without any CRS
    scene = (_write_scene(tmp_path / "scene.tif", 512, 640, seed=3, georeferenced=True) if georeferenced
             else _write_scene(tmp_path / "dubai_like.tif", 320, 384, seed=5, georeferenced=False))
    server = Server(scene, model, tmp_path)
    try:
        info = server.wait()
        assert (info["height"], info["width"]) == scene.shape and info["georeferenced"] is georeferenced
        n_classes = len(info["classes"])
        prediction = _read_tif(server.get_bytes("/api/export/refined.tif"))  # no click yet: the prediction

        page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server.url + "/")
        page.wait_for_function("Number(document.body.dataset.version) >= 0", timeout=CHANGE_TIMEOUT)
        assert page.locator("button.class-button").count() == n_classes
        assert page.locator("#image-name").inner_text() == scene.image.name
        _wait_tiles(page)
        page.locator("#opacity").fill("1")  # the prediction alone: its change shows on the screen
        page.wait_for_timeout(300)
        before = _map_without_marks(page)
        tiles_before = _prediction_tiles(server, info)

        # clicks of two classes where the network is wrong; the second chosen with the number key
        clicks = _mistakes(scene, prediction, [2, 0])
        version = _version(page)
        for i, (row, col, cls) in enumerate(clicks):
            if i == 0:
                page.click(f'button.class-button[data-class="{cls}"]')
            else:
                page.keyboard.press(str(cls + 1))
            assert page.locator("button.class-button.active").get_attribute("data-class") == str(cls)
            _click_pixel(page, row, col)
            version = _wait_version_above(page, version)
        state = server.get("/api/state")
        assert [(k["row"], k["col"], k["class"]) for k in state["clicks"]] == clicks
        assert state["version"] == version
        assert page.locator("#map .click-marker").count() == 2

        # the overlay changed: on the server (the map, a tile) and on the screen (the page refreshed it)
        _wait_tiles(page)
        changed_map = int((_read_tif(server.get_bytes("/api/export/refined.tif")) != prediction).sum())
        assert changed_map > 0 and _prediction_tiles(server, info) != tiles_before, "the clicks changed nothing"
        after = _map_without_marks(page)
        changed_screen = int(np.any(after != before, axis=-1).sum())  # a pixel of the map covers > 1 of the screen
        assert changed_screen >= changed_map / 2, \
            f"{changed_map} pixels of the map changed, but only {changed_screen} of the screen: the overlay was not refreshed"
        assert f"v={version}" in page.locator("#map img.leaflet-tile").last.get_attribute("src")
        assert "s on the server" in page.locator("#latency").inner_text()

        # undo (button) and redo (Ctrl+Shift+Z); redo with nothing to redo: the server's error shows
        page.click("#undo")
        version = _wait_version_above(page, version)
        assert len(server.get("/api/state")["clicks"]) == 1
        assert page.locator("#map .click-marker").count() == 1
        page.keyboard.press("Control+Shift+Z")
        version = _wait_version_above(page, version)
        assert [(k["row"], k["col"], k["class"]) for k in server.get("/api/state")["clicks"]] == clicks
        assert page.locator("#redo").is_disabled()
        page.keyboard.press("Control+Shift+Z")
        page.wait_for_function("document.getElementById('status').className === 'error'", timeout=CHANGE_TIMEOUT)
        assert page.locator("#status").inner_text().startswith("Error: ")
        if georeferenced:
            assert page.locator("#miou").inner_text().startswith("mIoU ")

        # guidance: the most uncertain patch is outlined; the button brings it, then the next one, into view
        page.wait_for_function("document.getElementById('suggestion').textContent.startsWith('Patch 1 ')",
                               timeout=CHANGE_TIMEOUT)
        for rank in (1, 2):
            page.click("#next-patch")
            page.wait_for_timeout(600)
            assert page.locator("#suggestion").inner_text().startswith(f"Patch {rank} ")
            assert page.evaluate("dial.map.getBounds().contains(dial.patchBox.getBounds())")
        page.evaluate("dial.map.fitBounds(dial.layers.image.options.bounds)")

        # DISCA: the page shows it is busy, then the adapted network's map
        page.click("#disca")
        page.wait_for_selector("body.busy", timeout=CHANGE_TIMEOUT)
        version = _wait_version_above(page, version)
        assert server.get("/api/state")["disca"] == {"applied": True, "clicks": len(clicks)}
        assert "DISCA applied" in page.locator("#click-count").inner_text()
        page.wait_for_function("dial.patchShown === -1 && document.getElementById('suggestion').textContent.startsWith('Patch 1 ')",
                               timeout=CHANGE_TIMEOUT)  # new suggestions for the new map

        # the uncertainty heat map toggles on
        page.check("#uncertainty-toggle")
        page.wait_for_selector("#map img.leaflet-tile-loaded[src*='/api/tiles/uncertainty/']", timeout=CHANGE_TIMEOUT)
        page.uncheck("#uncertainty-toggle")
        assert page.locator("#map img[src*='/api/tiles/uncertainty/']").count() == 0

        if georeferenced:  # --labels given: the reference layer toggles on
            page.check("#labels-toggle")
            page.wait_for_selector("#map img.leaflet-tile-loaded[src*='/api/tiles/labels/']", timeout=CHANGE_TIMEOUT)
            page.uncheck("#labels-toggle")
        else:
            assert page.locator("#labels-toggle").is_hidden()

        page.locator("#opacity").fill("0.55")
        _wait_tiles(page)
        if georeferenced:
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))

        # the exports, downloaded through the page's links
        tif = _download(page, "#export-tif", tmp_path)
        log = _download(page, "#export-clicks", tmp_path)
        vector = _download(page, "#export-vector", tmp_path)
        assert tif.name == f"{scene.image.stem}_refined.tif"
        with rasterio.open(tif) as src:
            assert (src.height, src.width) == scene.shape
            if georeferenced:
                assert src.crs == CRS_UTM and src.transform == TRANSFORM
            else:
                assert src.crs is None
            colormap = src.colormap(1)
            for c in info["classes"]:
                assert "#{:02x}{:02x}{:02x}".format(*colormap[c["index"]][:3]) == c["color"].lower()
            refined = src.read(1)
        assert set(np.unique(refined)) <= set(range(n_classes))
        assert np.any(refined != prediction), "the refined map is the prediction"

        raw = json.loads(log.read_text())
        assert ("crs" in raw) is georeferenced
        transform, crs = (TRANSFORM, CRS_UTM) if georeferenced else (None, None)
        assert read_click_log(log, scene.shape, n_classes, transform, crs) == [Click(r, c, k) for r, c, k in clicks]

        frame = gpd.read_file(vector)
        assert len(frame) > 0 and set(frame["class"]) <= set(range(n_classes))
        if georeferenced:
            assert frame.crs.to_epsg() == 32631
        # a reload loses no click: the page comes back with the saved state
        page.reload()
        page.wait_for_function("v => Number(document.body.dataset.version) === v", arg=version, timeout=CHANGE_TIMEOUT)
        assert page.locator("#map .click-marker").count() == len(clicks)
        assert "restored" in page.locator("#status").inner_text()
        assert not errors, f"JavaScript errors on the page: {errors}"
        page.close()
    except Exception:
        print(server.tail())
        raise
    finally:
        server.stop()
    print(f"browser test ({'geotiff' if georeferenced else 'pixel coordinates'}): {time.monotonic() - started:.1f} s")
