"""``dial serve``'s HTTP API (FastAPI TestClient): the contract's shapes, JSON errors without paths,
the body limit, tiles, and exports that a GIS reads back."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from cli_support import CLASSES, CRS_UTM, NAMES, SIZE, TRANSFORM, scene
from serve_support import clicks, make_session


@pytest.fixture(scope="module")
def folder(tmp_path_factory, one_torch_thread):
    return tmp_path_factory.mktemp("server")


def client_of(session, static=None, **kwargs):
    from fastapi.testclient import TestClient

    from dial_core.app.server import create_app

    return TestClient(create_app(session, static, **kwargs), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(folder):
    """A session with labels and a state folder, and two clicks already given."""
    client = client_of(make_session(folder, state="api"))
    for k in clicks()[:2]:
        assert client.post("/api/clicks", json={"row": k.row, "col": k.col, "class": k.cls}).status_code == 200
    return client


def png(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def assert_error(response, status: int, folder, match: str = "") -> str:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"} and match in body["error"]
    assert str(folder) not in response.text and "/tmp" not in response.text and "Traceback" not in response.text
    return body["error"]


def test_info(client) -> None:
    info = client.get("/api/info").json()
    assert info == {"name": "scene.tif", "width": SIZE, "height": SIZE, "tile_size": 256, "max_zoom": 0,
                    "classes": [{"index": i, "name": c["name"], "color": "#%02x%02x%02x" % tuple(c["color"])}
                                for i, c in enumerate(CLASSES)],
                    "georeferenced": True, "crs": "EPSG:32631", "has_labels": True, "methods": ["ac", "disca"],
                    "acquisition": "entropy", "patch_size": 64}


def test_click_undo_redo_disca(folder) -> None:
    client = client_of(make_session(folder, state=None))
    assert_error(client.post("/api/undo"), 409, folder, "nothing to undo")
    assert_error(client.post("/api/redo"), 409, folder, "nothing to redo")
    assert_error(client.post("/api/disca"), 409, folder, "click first")
    state = client.get("/api/state").json()
    assert state["version"] == 0 and state["clicks"] == [] and not state["can_undo"] and state["miou"] is not None
    k = clicks()[0]
    body = client.post("/api/clicks", json={"row": k.row, "col": k.col, "class": k.cls}).json()
    assert set(body) == {"state", "changed", "changed_pixels", "seconds", "windows"}
    assert body["state"]["version"] == 1 and body["state"]["clicks"] == [{"row": k.row, "col": k.col, "class": k.cls}]
    assert body["windows"] >= 1 and body["seconds"] > 0 and body["state"]["last_seconds"] == body["seconds"]
    if body["changed_pixels"]:
        r0, c0, r1, c1 = body["changed"]
        assert 0 <= r0 < r1 <= SIZE and 0 <= c0 < c1 <= SIZE
    assert len(body["state"]["iou"]) == len(CLASSES)
    undone = client.post("/api/undo").json()
    assert undone["state"]["clicks"] == [] and undone["state"]["can_redo"] and undone["state"]["version"] == 2
    assert undone["changed_pixels"] == body["changed_pixels"]
    assert client.post("/api/redo").json()["state"]["clicks"] == body["state"]["clicks"]
    adapted = client.post("/api/disca").json()
    assert adapted["state"]["disca"] == {"applied": True, "clicks": 1}
    assert adapted["windows"] == 9  # a 256² image in 128² windows overlapping by 32: everything re-predicted


def test_bad_requests_are_json_errors_without_paths(client, folder) -> None:
    for body, match in (({"row": -1, "col": 3, "class": 0}, "outside"), ({"row": 3, "col": SIZE, "class": 0}, "outside"),
                        ({"row": 3, "col": 3, "class": 7}, "unknown class"), ({"row": "3", "col": 3, "class": 0}, "row"),
                        ({"row": 3.5, "col": 3, "class": 0}, "row"), ({"row": 3, "col": 3}, "class"),
                        ({"row": 3, "col": 3, "class": 0, "x": 1}, "x")):
        assert_error(client.post("/api/clicks", json=body), 422, folder, match)
    assert_error(client.post("/api/clicks", content=b"{not json", headers={"content-type": "application/json"}),
                 422, folder)
    assert_error(client.get("/api/suggestions?count=0"), 422, folder, "count")
    assert_error(client.get("/api/nothing"), 404, folder)
    assert_error(client.get("/api/export/secrets.txt"), 404, folder, "unknown export")
    assert_error(client.get("/"), 404, folder, "not installed")
    assert client.get("/api/state").json()["version"] == 2  # nothing changed


def test_body_limit(client, folder) -> None:
    big = json.dumps({"row": 3, "col": 3, "class": 0, "pad": "x" * 70_000})
    assert_error(client.post("/api/clicks", content=big, headers={"content-type": "application/json"}), 413, folder, "64 KiB")

    def chunks():  # streamed without a Content-Length
        for _ in range(70):
            yield b"x" * 1024

    assert_error(client.post("/api/clicks", content=chunks(), headers={"content-type": "application/json"}),
                 413, folder, "64 KiB")


def test_server_errors_name_no_path(folder) -> None:
    blocker = folder / "blocker"
    blocker.write_text("a file where the exports folder should be")
    client = client_of(make_session(folder, state=None), export_dir=blocker / "exports")
    message = assert_error(client.get("/api/export/refined.tif"), 500, folder)
    assert "scene_refined.tif" in message


def test_public_message() -> None:
    from dial_core.app.server import public_message

    assert public_message("cannot write /tmp/x/y/scene.tif (OSError: [Errno 20] Not a directory: '/tmp/x/y')") == \
        "cannot write scene.tif (OSError: [Errno 20] Not a directory: 'y')"
    assert public_message("rows 0..255 / cols 1/2 N/A ./a/b ~/c/d") == "rows 0..255 / cols 1/2 N/A b d"


def test_tiles(client, folder) -> None:
    image = png(client.get("/api/tiles/image/0/0/0.png"))
    assert image.shape == (256, 256, 4) and (image[..., 3] == 255).all()
    np.testing.assert_array_equal(image[..., :3], scene()[0])
    prediction = png(client.get("/api/tiles/prediction/0/0/0.png?v=2"))
    colours = np.array([c["color"] for c in CLASSES])
    assert prediction.shape == (256, 256, 4)
    assert {tuple(v) for v in prediction[..., :3].reshape(-1, 3)} <= {tuple(c) for c in colours}
    labels = png(client.get("/api/tiles/labels/0/0/0.png"))
    label = scene()[1]
    assert (labels[..., 3][label == 255] == 0).all() and (labels[..., 3][label != 255] == 255).all()
    np.testing.assert_array_equal(labels[..., :3][label != 255], colours[label[label != 255]])
    heat = client.get("/api/tiles/uncertainty/0/0/0.png")
    assert png(heat).shape == (256, 256, 4) and heat.headers["cache-control"] == "no-cache"
    assert "cache-control" not in client.get("/api/tiles/image/0/0/0.png").headers
    for url in ("/api/tiles/image/0/1/0.png", "/api/tiles/prediction/1/0/0.png", "/api/tiles/image/0/-1/0.png",
                "/api/tiles/depth/0/0/0.png"):
        assert_error(client.get(url), 404, folder)
    no_labels = client_of(make_session(folder, state=None, labels=False))
    assert_error(no_labels.get("/api/tiles/labels/0/0/0.png"), 404, folder, "--labels")
    assert no_labels.get("/api/info").json()["has_labels"] is False


def test_tile_pyramid_and_zoom_levels() -> None:
    from dial_core.app.tiles import TileNotFound, TileRenderer, max_zoom

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1000, 600, 3), dtype=np.uint8)
    renderer = TileRenderer(pixels, [c["color"] for c in CLASSES])
    assert max_zoom(1000, 600) == renderer.max_zoom == 2 and max_zoom(200, 100) == 0
    top = renderer.image_tile(2, 1, 3)  # rows 768..999 (232), cols 256..511
    np.testing.assert_array_equal(top[:232, :, :3], pixels[768:, 256:512])
    assert (top[232:, :, 3] == 0).all() and (top[:232, :, 3] == 255).all()
    whole = renderer.image_tile(0, 0, 0)  # 4×4 px per tile pixel: rows 0..249, cols 0..149
    expected = pixels[:1000, :600].reshape(250, 4, 150, 4, 3).astype(np.float64).mean((1, 3))
    assert np.abs(whole[:250, :150, :3].astype(float) - expected).max() <= 1.0  # two rounded halvings
    assert (whole[250:, :, 3] == 0).all() and (whole[:, 150:, 3] == 0).all()
    classes = (np.arange(1000)[:, None] // 100 + np.arange(600)[None, :] // 100) % 3
    tile = renderer.class_tile(classes.astype(np.uint8), 1, 0, 1)  # rows 512.., 2 px per tile pixel
    np.testing.assert_array_equal(tile[:244, :, :3], np.array([c["color"] for c in CLASSES])[classes[513::2, 1:512:2]])
    for z, x, y in ((3, 0, 0), (2, 3, 0), (2, 0, 4), (0, 1, 0), (-1, 0, 0)):
        with pytest.raises(TileNotFound):
            renderer.span(z, x, y)


def test_tiles_are_fast_on_a_6000_scene() -> None:
    import time

    from dial_core.app.tiles import TileRenderer, encode_png

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (6000, 6000, 3), dtype=np.uint8)
    classes = rng.integers(0, 3, (6000, 6000), dtype=np.uint8)
    heat = rng.random((6000, 6000), dtype=np.float32)
    renderer = TileRenderer(pixels, [c["color"] for c in CLASSES])
    assert renderer.max_zoom == 5
    times = []
    for z in range(renderer.max_zoom + 1):
        for draw in (lambda: renderer.image_tile(z, 0, 0), lambda: renderer.class_tile(classes, z, 0, 0),
                     lambda: renderer.heat_tile(heat, 1.0, z, 0, 0)):
            start = time.perf_counter()
            encode_png(draw())
            times.append(time.perf_counter() - start)
    assert np.median(times) < 0.05 and max(times) < 0.25, times


def test_exports(client, folder) -> None:
    import geopandas as gpd

    from dial_core.clicks.click_log import read_click_log

    response = client.get("/api/export/refined.tif")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="scene_refined.tif"'
    path = folder / "refined.tif"
    path.write_bytes(response.content)
    with rasterio.open(path) as src:
        assert src.crs == CRS_UTM and src.transform == TRANSFORM and src.count == 1 and src.dtypes[0] == "uint8"
        assert json.loads(src.tags()["CLASS_NAMES"]) == NAMES
        assert [src.colormap(1)[i][:3] for i in range(len(CLASSES))] == [tuple(c["color"]) for c in CLASSES]
        refined = src.read(1)
    from dial_core.interactive.refine import refine
    from serve_support import DISCA_WINDOW, OVERLAP, WINDOW, model

    np.testing.assert_array_equal(refined, refine(model(), scene()[0], clicks()[:2], "ac", None, WINDOW, OVERLAP,
                                                  DISCA_WINDOW).argmax(0))
    log = client.get("/api/export/clicks.geojson")
    assert log.headers["content-disposition"] == 'attachment; filename="scene_clicks.geojson"'
    (folder / "clicks.geojson").write_bytes(log.content)
    assert read_click_log(folder / "clicks.geojson", (SIZE, SIZE), len(CLASSES), TRANSFORM, CRS_UTM) == clicks()[:2]
    for name in ("polygons.gpkg", "polygons.geojson"):
        response = client.get(f"/api/export/{name}")
        assert response.headers["content-disposition"] == f'attachment; filename="scene_{name}"'
        out = folder / name
        out.write_bytes(response.content)
        frame = gpd.read_file(out)
        assert len(frame) and frame.geometry.is_valid.all() and set(frame["class"]) <= {0, 1, 2}
        assert frame["pixels"].sum() == SIZE * SIZE
        if name.endswith("gpkg"):
            assert frame.crs.to_epsg() == 32631
    assert (folder / "api" / "exports" / "scene_refined.tif").is_file()  # written in the state folder


def test_page_and_static_files(folder) -> None:
    static = folder / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>dial</title>")
    (static / "app.js").write_text("// page")
    client = client_of(make_session(folder, state=None), static)
    page = client.get("/")
    assert page.status_code == 200 and "<title>dial</title>" in page.text
    assert client.get("/static/app.js").text == "// page"
    assert_error(client.get("/static/missing.js"), 404, folder)


# ------------------------------------------------------------------ the command line
def test_serve_command_builds_the_session(folder, monkeypatch, capsys) -> None:
    from pathlib import Path

    import rasterio as rio

    from cli_support import save_model, write_scene
    from dial_core.app import serve_cmd
    from dial_core.app.cli import main

    model = save_model(folder / "model.pt")
    labels = folder / "labels.tif"
    if not (folder / "scene.tif").exists():
        write_scene(folder / "scene.tif")
    with rio.open(folder / "scene.tif") as src:
        profile = {**src.profile, "count": 1}
    with rio.open(labels, "w", **profile) as dst:
        dst.write(scene()[1], 1)
    seen = {}
    monkeypatch.setattr(serve_cmd, "serve", lambda session, host, port, quiet: seen.update(session=session, host=host, port=port))
    monkeypatch.chdir(folder)
    args = ["serve", "scene.tif", "--model", str(model), "--labels", str(labels), "--window", "128", "--overlap", "32",
            "--quiet", "--lr", "1e-4"]
    assert main(args) == 0
    session = seen["session"]
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8765)
    assert session.state_dir == Path("scene.dial") and session.config.disca.lr == 1e-4
    assert session.state()["miou"] is not None and session.config.window == 128
    session.add_click(10, 10, 1)
    assert (folder / "scene.dial" / "session.json").is_file()
    assert main([*args, "--host", "0.0.0.0"]) == 1
    assert "--allow-remote" in capsys.readouterr().err
    assert main([*args[:-2], "--host", "0.0.0.0", "--allow-remote", "--port", "9000"]) == 0  # no --lr: DISCA off
    assert seen["port"] == 9000 and seen["session"].config.disca is None and len(seen["session"].stacks.clicks) == 1
    assert main([*args, "--labels", str(folder / "scene.tif")]) == 1
    assert "one uint8 band" in capsys.readouterr().err
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    help_text = capsys.readouterr().out
    assert done.value.code == 0 and "--allow-remote" in help_text and "--labels" in help_text and "--lr" in help_text
