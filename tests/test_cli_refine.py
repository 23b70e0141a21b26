"""`dial refine`: a person's clicks (the human user's click log) in map or pixel coordinates give one
refined map; AC and DISCA as the simulated protocol runs them; clear errors; ./dial passes through."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.warp import transform as reproject

from cli_support import (CLASSES, CRS_UTM, NAMES, SIZE, TRANSFORM, map_xy, save_model, scene, trained_state, write_clicks,
                         write_dataset_json, write_scene)
from dial_core.app.cli import DISCA_DEFAULTS, main
from dial_core.clicks.click_log import read_click_log
from dial_core.clicks.types import Click

ROOT = Path(__file__).resolve().parents[1]
PIXELS = [(40, 30), (200, 60), (120, 220), (230, 240)]  # (col, row) of the clicks
LR = "1e-4"


@pytest.fixture(scope="module")
def files(tmp_path_factory, one_torch_thread) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("refine")
    return {"model": save_model(folder / "model.pt"), "image": write_scene(folder / "scene.tif"),
            "plain": write_scene(folder / "plain.tif", georeferenced=False), "folder": folder}


def clicks() -> list[Click]:
    """One click per position with the true class there."""
    label = scene()[1]
    return [Click(row, col, int(label[row, col])) for col, row in PIXELS]


def pixel_points(by_name: bool = False) -> list[tuple[float, float, object]]:
    return [(k.col, k.row, NAMES[k.cls] if by_name else k.cls) for k in clicks()]


def map_points() -> list[tuple[float, float, object]]:
    return [(*map_xy(k.col, k.row), NAMES[k.cls]) for k in clicks()]


def refine_cli(files, tmp_path, clicks_file: Path, *extra: str, image: str = "image") -> np.ndarray:
    out = tmp_path / f"refined-{clicks_file.stem}.tif"
    assert main(["refine", str(files[image]), "--model", str(files["model"]), "--clicks", str(clicks_file),
                 "--out", str(out), "--quiet", *extra]) == 0
    with rasterio.open(out) as src:
        if image == "image":
            assert src.crs == CRS_UTM and src.transform == TRANSFORM
        assert json.loads(src.tags()["CLASS_NAMES"]) == NAMES
        return src.read(1)


def _model():
    from dial_core.models.segmenter import segmenter_from_state

    return segmenter_from_state(trained_state())


@pytest.mark.parametrize("method", ["ac", "disca"])
def test_clicks_in_map_and_pixel_coordinates_agree(files, tmp_path, method: str) -> None:
    from dial_core.interactive.disca import DiscaConfig
    from dial_core.interactive.refine import refine

    lon, lat = reproject(CRS_UTM, "EPSG:4326", [p[0] for p in map_points()], [p[1] for p in map_points()])
    logs = {
        "pixels": write_clicks(tmp_path / "pixels.geojson", pixel_points()),
        "names": write_clicks(tmp_path / "names.geojson", pixel_points(by_name=True)),
        "utm": write_clicks(tmp_path / "utm.geojson", map_points(), "EPSG:32631"),
        "lonlat": write_clicks(tmp_path / "lonlat.geojson", [(x, y, p[2]) for x, y, p in zip(lon, lat, map_points())],
                               "urn:ogc:def:crs:OGC:1.3:CRS84"),
    }
    extra = ["--method", method] + (["--lr", LR] if method == "disca" else [])
    if method == "disca":  # the slow one: pixels against the farthest form (names, reprojected from lon / lat)
        logs = {name: logs[name] for name in ("pixels", "lonlat")}
    maps = {name: refine_cli(files, tmp_path, path, *extra) for name, path in logs.items()}
    for name, refined in maps.items():
        np.testing.assert_array_equal(refined, maps["pixels"], err_msg=name)
    disca = DiscaConfig(float(LR), DISCA_DEFAULTS["steps"], DISCA_DEFAULTS["regularisation"],
                        DISCA_DEFAULTS["ac_drop_probability"], DISCA_DEFAULTS["p0"])
    expected = refine(_model(), scene()[0], clicks(), method, disca, disca_window=DISCA_DEFAULTS["window"])
    np.testing.assert_array_equal(maps["pixels"], expected.argmax(0))
    plain = refine(_model(), scene()[0], [], "ac")
    assert (expected.argmax(0) != plain.argmax(0)).any()  # the clicks changed the map


def test_pixel_clicks_on_an_image_without_georeference(files, tmp_path) -> None:
    log = write_clicks(tmp_path / "pixels.geojson", pixel_points(by_name=True))
    np.testing.assert_array_equal(refine_cli(files, tmp_path, log, image="plain"), refine_cli(files, tmp_path, log))


def test_ac_is_what_the_interactive_predictor_keeps(files) -> None:
    """The server's incremental AC (ClickPredictor) and the command line's one-shot AC give one map."""
    from dial_core.interactive.local_prediction import ClickPredictor, crop_encoder
    from dial_core.interactive.refine import refine

    model, image = _model(), scene()[0]
    predictor = ClickPredictor(model, image, 128, 32)
    encode = crop_encoder(model.spec.click_encoder(), image)
    for k in range(1, len(clicks()) + 1):
        predictor.update(clicks()[:k], encode)
    np.testing.assert_array_equal(predictor.probs, refine(model, image, clicks(), "ac", window=128, overlap=32))


def test_disca_is_the_protocols_replay_of_the_click_log(files) -> None:
    """The human user replaying these clicks in the click protocol reaches the map refine gives."""
    from dial_core.evaluation.metrics import segmentation_scores
    from dial_core.evaluation.protocols import InteractionConfig, click_protocol
    from dial_core.interactive.disca import DiscaConfig
    from dial_core.interactive.refine import refine

    image, label = scene()
    disca = DiscaConfig(1e-4, 2, 1.0, 0.5, "initial")  # a drop probability that draws from the seeded stream
    cfg = InteractionConfig("disca", "human", disca, window=128, overlap=32, disca_window=128)
    rows = click_protocol(_model(), image, label, NAMES, len(clicks()), cfg, np.random.default_rng(3), recorded=clicks())
    refined = refine(_model(), image, clicks(), "disca", disca, 128, 32, 128, seed=3).argmax(0)
    scores = segmentation_scores(label, refined, len(NAMES))
    assert rows[-1]["correct_pixels"] == scores["correct_pixels"] and rows[-1]["miou"] == scores["miou"]
    assert rows[-1]["correct_pixels"] != rows[0]["correct_pixels"]


def test_disca_defaults_are_the_default_runs(files) -> None:
    disca = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluation"]["disca"]
    drop = disca["ac_drop_probability"]
    assert DISCA_DEFAULTS == {"steps": disca["steps"], "regularisation": disca["regularisation"], "p0": disca["p0"],
                              "ac_drop_probability": drop["clicks"] if isinstance(drop, dict) else drop,
                              "window": disca["window"]}


def test_disca_lr_from_the_workflows_calibration(files, tmp_path, capsys) -> None:
    project = tmp_path / "project"
    model = save_model(project / "data" / "models" / "pretrain" / "toy" / "linknet.pt")
    log = write_clicks(tmp_path / "clicks.geojson", pixel_points())
    argv = ["refine", str(files["image"]), "--model", str(model), "--clicks", str(log), "--method", "disca", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "none.tif")]) == 1
    err = capsys.readouterr().err
    assert "--lr" in err and "--calibration" in err and "Traceback" not in err
    calibration = project / "reports" / "metrics" / "calibration" / "toy" / "toy" / "linknet" / "disca.json"
    calibration.parent.mkdir(parents=True)
    calibration.write_text(json.dumps({"method": "disca", "lr": float(LR)}))
    assert main([*argv, "--out", str(tmp_path / "calibrated.tif")]) == 0
    assert f"lr {float(LR):.3g} (from {calibration})" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "given.tif"), "--lr", LR, "--quiet"]) == 0
    with rasterio.open(tmp_path / "calibrated.tif") as a, rasterio.open(tmp_path / "given.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_saved_click_log_replays(files, tmp_path) -> None:
    log, saved = write_clicks(tmp_path / "names.geojson", pixel_points(by_name=True)), tmp_path / "a0000.geojson"
    refine_cli(files, tmp_path, log, "--save-clicks", str(saved))
    obj = json.loads(saved.read_text())
    assert obj["crs"]["properties"]["name"] == "EPSG:32631"
    assert [f["properties"]["class"] for f in obj["features"]] == [k.cls for k in clicks()]
    assert read_click_log(saved, (SIZE, SIZE), len(NAMES), TRANSFORM, CRS_UTM) == clicks()


def test_named_click_log_replays_in_the_workflow(tmp_path) -> None:
    """The file given to `dial refine` (class names, map coordinates) is a click log the DAG's human user reads."""
    from dial_core.data.canonical import DatasetInfo, Sample, write_dataset
    from dial_core.steps import recorded_clicks

    image, label = scene()
    info = write_dataset(tmp_path / "toy", DatasetInfo("toy", CLASSES, None, "test", "CC0"),
                         [Sample("a0000", image, label, TRANSFORM, CRS_UTM)])
    write_clicks(tmp_path / "clicks" / "toy" / "a0000.geojson", map_points(), "EPSG:32631")
    evaluation = {"agent": "human", "agent_options": {"clicks": str(tmp_path / "clicks" / "{dataset}")}}
    assert recorded_clicks(tmp_path / "toy", info, ["a0000"], ["a0000"], evaluation) == {"a0000": clicks()}


# ------------------------------------------------------------------------------------------- errors
def _fails(files, tmp_path, capsys, points, crs, *fragments: str, image: str = "image", extra=()) -> None:
    log = write_clicks(tmp_path / "bad.geojson", points, crs)
    out = tmp_path / "refined.tif"
    assert main(["refine", str(files[image]), "--model", str(files["model"]), "--clicks", str(log),
                 "--out", str(out), "--quiet", *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()


def test_crs_mismatches(files, tmp_path, capsys) -> None:
    utm = map_points()
    # UTM numbers declared as Web Mercator: they land far away
    _fails(files, tmp_path, capsys, utm, "EPSG:3857", "bad.geojson", "click 0", "lies outside the image",
           "is EPSG:3857 the coordinate system")
    # map coordinates without a crs member are read as pixels
    _fails(files, tmp_path, capsys, utm, None, "bad.geojson", "no 'crs' member", "map extent", "EPSG:32631")
    # map coordinates on an image without georeference
    _fails(files, tmp_path, capsys, utm, "EPSG:32631", "bad.geojson", "no georeference", image="plain")


def test_click_outside_the_image(files, tmp_path, capsys) -> None:
    _fails(files, tmp_path, capsys, [(10, 10, 0), (SIZE + 4, 10, 1)], None, "bad.geojson", "click 1 at (260, 10)",
           "outside the image (256×256 px)")
    x, y = map_xy(-3, 5)
    _fails(files, tmp_path, capsys, [(x, y, "soil")], "EPSG:32631", "bad.geojson", "click 0", "→ pixel (col -3, row 5)", "outside")


def test_unknown_classes(files, tmp_path, capsys) -> None:
    _fails(files, tmp_path, capsys, [(10, 10, "forest")], None, "bad.geojson", "class 'forest'", "0 soil, 1 crop, 2 water")
    _fails(files, tmp_path, capsys, [(10, 10, 3)], None, "bad.geojson", "class 3", "0..2")


def test_class_list_and_encoding_that_do_not_fit(files, tmp_path, capsys) -> None:
    from dial_core.models.checkpoint import save_checkpoint

    four = write_dataset_json(tmp_path / "four.json", [*CLASSES, {"name": "road", "color": [9, 9, 9]}])
    _fails(files, tmp_path, capsys, pixel_points(), None, "four.json", "predicts 3 classes", extra=["--classes", str(four)])
    payload = dict(trained_state())
    payload["spec"] = {**payload["spec"], "encoding": "cgt"}
    save_checkpoint(tmp_path / "cgt.pt", payload)
    log = write_clicks(tmp_path / "ok.geojson", pixel_points())
    assert main(["refine", str(files["image"]), "--model", str(tmp_path / "cgt.pt"), "--clicks", str(log),
                 "--out", str(tmp_path / "r.tif"), "--quiet"]) == 1
    assert "cgt.pt reads clicks with the cgt encoding" in capsys.readouterr().err


def test_missing_click_log_and_calibration(files, tmp_path, capsys) -> None:
    assert main(["refine", str(files["image"]), "--model", str(files["model"]), "--clicks", str(tmp_path / "gone.geojson"),
                 "--out", str(tmp_path / "r.tif"), "--quiet"]) == 1
    assert "gone.geojson: the click log does not exist" in capsys.readouterr().err
    log = write_clicks(tmp_path / "ok.geojson", pixel_points())
    assert main(["refine", str(files["image"]), "--model", str(files["model"]), "--clicks", str(log), "--method", "disca",
                 "--calibration", str(tmp_path / "cal.json"), "--out", str(tmp_path / "r.tif"), "--quiet"]) == 1
    assert "cal.json" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- ./dial
def test_dial_wrapper_passes_the_commands_through(tmp_path) -> None:
    """./dial predict|refine|suggest run the console script in the caller's folder (a stand-in
    environment: the stamp of an installed .venv and a `dial` that prints where and what it ran)."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    for name in ("dial", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, project / name)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()).hexdigest()[:16]
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / f".installed-{stamp}").touch()
    fake = project / ".venv" / "bin" / "dial"
    fake.write_text('#!/bin/sh\necho "$PWD|$*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if k != "DIAL_DRY"}
    for command in ("predict", "refine", "suggest"):
        result = subprocess.run(["bash", str(project / "dial"), command, "scene.tif", "--model", "m.pt"],
                                cwd=elsewhere, capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{elsewhere.resolve()}|{command} scene.tif --model m.pt"
    usage = subprocess.run(["bash", str(project / "dial"), "help"], capture_output=True, text=True, env=env, timeout=60)
    assert all(f"\n  {command} IMAGE" in usage.stdout for command in ("predict", "refine", "suggest"))
