"""`dial predict`: a class GeoTIFF on the image's grid with colours and names, the uncertainty map,
polygons per class; clear errors; `--help` on every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from cli_support import CLASSES, CRS_UTM, GSD, NAMES, SIZE, TRANSFORM, save_model, scene, write_dataset_json, write_scene
from dial_core.app.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory, one_torch_thread) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("predict")
    return {"model": save_model(folder / "model.pt"), "image": write_scene(folder / "scene.tif"),
            "plain": write_scene(folder / "plain.tif", georeferenced=False), "folder": folder}


def test_predict_keeps_grid_and_names_classes(files, tmp_path) -> None:
    from dial_core.interactive.inference import predict_probs
    from dial_core.models.checkpoint import load_checkpoint
    from dial_core.models.segmenter import segmenter_from_state

    out = tmp_path / "pred.tif"
    assert main(["predict", str(files["image"]), "--model", str(files["model"]), "--out", str(out), "--quiet"]) == 0
    with rasterio.open(out) as src:
        assert src.crs == CRS_UTM and src.transform == TRANSFORM
        assert (src.count, src.dtypes[0], src.shape) == (1, "uint8", (SIZE, SIZE))
        colours = src.colormap(1)
        assert [colours[i][:3] for i in range(3)] == [tuple(c["color"]) for c in CLASSES]
        assert json.loads(src.tags()["CLASS_NAMES"]) == NAMES
        assert src.tags(1) == {f"CLASS_{i}": name for i, name in enumerate(NAMES)}
        assert all(name in src.descriptions[0] for name in NAMES)
        written = src.read(1)
    model = segmenter_from_state(load_checkpoint(files["model"]))
    probs, _ = predict_probs(model, scene()[0], None)
    np.testing.assert_array_equal(written, probs.argmax(0))


def test_uncertainty_map_is_the_acquisitions(files, tmp_path) -> None:
    from dial_core.active.uncertainty import predict_with_uncertainty
    from dial_core.models.checkpoint import load_checkpoint
    from dial_core.models.segmenter import segmenter_from_state

    out, u = tmp_path / "pred.tif", tmp_path / "u.tif"
    assert main(["predict", str(files["image"]), "--model", str(files["model"]), "--out", str(out),
                 "--uncertainty", "entropy", "--out-uncertainty", str(u), "--window", "128", "--overlap", "32", "--quiet"]) == 0
    model = segmenter_from_state(load_checkpoint(files["model"]))
    probs, expected = predict_with_uncertainty(model, scene()[0], None, "entropy", 128, 32)
    with rasterio.open(u) as src:
        assert src.crs == CRS_UTM and src.transform == TRANSFORM and src.dtypes[0] == "float32"
        assert "entropy" in src.descriptions[0]
        np.testing.assert_allclose(src.read(1), expected, rtol=1e-6)
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(1), probs.argmax(0))


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_vector_polygons_per_class_with_areas(files, tmp_path, suffix: str) -> None:
    out, vector = tmp_path / "pred.tif", tmp_path / f"classes{suffix}"
    assert main(["predict", str(files["image"]), "--model", str(files["model"]), "--out", str(out),
                 "--vector", str(vector), "--quiet"]) == 0
    with rasterio.open(out) as src:
        classes = src.read(1)
    frame = gpd.read_file(vector)
    assert frame.crs.to_epsg() == 32631
    assert frame.geometry.is_valid.all() and (frame.geom_type == "Polygon").all()
    assert set(frame["class"]) == set(np.unique(classes).tolist())
    assert all(frame["name"] == [NAMES[c] for c in frame["class"]])
    assert (frame["area_m2"] > 0).all()
    counts = np.bincount(classes.ravel(), minlength=3)
    for cls, group in frame.groupby("class"):
        assert group["pixels"].sum() == counts[cls]
        assert group["area_m2"].sum() == pytest.approx(counts[cls] * GSD**2)
        assert group.geometry.area.sum() == pytest.approx(counts[cls] * GSD**2)
    assert frame.union_all().area == pytest.approx(SIZE * SIZE * GSD**2)
    left, bottom, right, top = frame.total_bounds
    assert (left, top) == pytest.approx((TRANSFORM.c, TRANSFORM.f)) and right - left == pytest.approx(SIZE * GSD)


def test_simplified_polygons_keep_a_coverage(files, tmp_path) -> None:
    exact, simple = tmp_path / "exact.gpkg", tmp_path / "simple.gpkg"
    for vector, tolerance in ((exact, "0"), (simple, "2.0")):
        assert main(["predict", str(files["image"]), "--model", str(files["model"]), "--out", str(tmp_path / "p.tif"),
                     "--vector", str(vector), "--simplify", tolerance, "--quiet"]) == 0
    a, b = gpd.read_file(exact), gpd.read_file(simple)
    assert len(b) == len(a) and b.geometry.is_valid.all()
    assert b.geometry.count_coordinates().sum() < a.geometry.count_coordinates().sum()
    assert list(b["area_m2"]) == pytest.approx(list(a["area_m2"]))  # areas of the exact pixel outlines
    assert b.union_all().area == pytest.approx(SIZE * SIZE * GSD**2, rel=1e-3)  # no gaps or overlaps between classes
    assert b.geometry.area.sum() == pytest.approx(SIZE * SIZE * GSD**2, rel=1e-3)


def test_image_without_georeference_stays_in_pixels(files, tmp_path) -> None:
    out, vector = tmp_path / "pred.tif", tmp_path / "classes.gpkg"
    assert main(["predict", str(files["plain"]), "--model", str(files["model"]), "--out", str(out),
                 "--vector", str(vector), "--quiet"]) == 0
    with rasterio.open(out) as src:
        assert src.crs is None and src.transform.is_identity
        classes = src.read(1)
    frame = gpd.read_file(vector)
    assert frame.crs is None and "area_m2" not in frame
    assert frame["pixels"].sum() == SIZE * SIZE
    assert tuple(frame.total_bounds) == (0, 0, SIZE, SIZE)
    assert frame.geometry.area.sum() == SIZE * SIZE
    counts = np.bincount(classes.ravel(), minlength=3)
    assert all(frame.groupby("class")["pixels"].sum()[c] == counts[c] for c in np.flatnonzero(counts))
    geojson = tmp_path / "classes.geojson"
    assert main(["predict", str(files["plain"]), "--model", str(files["model"]), "--out", str(out),
                 "--vector", str(geojson), "--quiet"]) == 0
    raw = json.loads(geojson.read_text())
    assert "crs" not in raw and raw["name"] == "classes" and len(raw["features"]) == len(frame)


def test_classes_from_a_dataset_json_for_a_checkpoint_without_them(files, tmp_path) -> None:
    model = save_model(tmp_path / "bare.pt", classes=False)
    renamed = [{**c, "name": c["name"].upper()} for c in CLASSES]
    dataset = write_dataset_json(tmp_path / "dataset.json", renamed)
    out = tmp_path / "pred.tif"
    assert main(["predict", str(files["image"]), "--model", str(model), "--classes", str(dataset), "--out", str(out), "--quiet"]) == 0
    with rasterio.open(out) as src:
        assert json.loads(src.tags()["CLASS_NAMES"]) == [c["name"] for c in renamed]
    assert main(["predict", str(files["image"]), "--model", str(model), "--out", str(out), "--quiet"]) == 0
    with rasterio.open(out) as src:  # no names anywhere: generic ones, and a colour table all the same
        assert json.loads(src.tags()["CLASS_NAMES"]) == ["class_0", "class_1", "class_2"]
        assert len({src.colormap(1)[i] for i in range(3)}) == 3


def test_workflow_checkpoint_finds_its_dataset_json(files, tmp_path) -> None:
    project = tmp_path / "project"
    model = save_model(project / "data" / "models" / "pretrain" / "toy" / "linknet.pt", classes=False)
    write_dataset_json(project / "data" / "processed" / "toy" / "dataset.json", CLASSES)
    out = tmp_path / "pred.tif"
    assert main(["predict", str(files["image"]), "--model", str(model), "--out", str(out), "--quiet"]) == 0
    with rasterio.open(out) as src:
        assert json.loads(src.tags()["CLASS_NAMES"]) == NAMES


# ------------------------------------------------------------------------------------------- errors
def _fails(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_missing_files_are_named(files, tmp_path, capsys) -> None:
    out = str(tmp_path / "pred.tif")
    _fails(capsys, ["predict", str(tmp_path / "nope.tif"), "--model", str(files["model"]), "--out", out, "--quiet"],
           "nope.tif", "does not exist")
    _fails(capsys, ["predict", str(files["image"]), "--model", str(tmp_path / "nope.pt"), "--out", out, "--quiet"],
           "nope.pt", "--model")
    _fails(capsys, ["predict", str(files["image"]), "--model", str(files["model"]), "--classes", str(tmp_path / "none.json"),
                    "--out", out, "--quiet"], "none.json")
    assert not Path(out).exists()


def test_class_list_that_does_not_fit_the_model(files, tmp_path, capsys) -> None:
    out = str(tmp_path / "pred.tif")
    two = write_dataset_json(tmp_path / "two.json", CLASSES[:2])
    _fails(capsys, ["predict", str(files["image"]), "--model", str(files["model"]), "--classes", str(two), "--out", out],
           "predicts 3 classes", "two.json", "lists 2")
    other = write_dataset_json(tmp_path / "other.json", [{**c, "name": f"x{i}"} for i, c in enumerate(CLASSES)])
    _fails(capsys, ["predict", str(files["image"]), "--model", str(files["model"]), "--classes", str(other), "--out", out],
           "was trained on the classes 0=soil", "other.json", "0=x0")


def test_other_checkpoints_and_options(files, tmp_path, capsys) -> None:
    import torch

    head = tmp_path / "head.pt"
    torch.save({"in_channels": 32, "state_dict": {}}, head)
    out = str(tmp_path / "pred.tif")
    _fails(capsys, ["predict", str(files["image"]), "--model", str(head), "--out", out], "head.pt", "not a trained segmentation network")
    _fails(capsys, ["predict", str(files["image"]), "--model", str(files["model"]), "--out", out, "--uncertainty", "entropy"],
           "--out-uncertainty")
    _fails(capsys, ["predict", str(files["image"]), "--model", str(files["model"]), "--out", out,
                    "--uncertainty", "confidnet", "--out-uncertainty", str(tmp_path / "u.tif")], "--confidnet")
    _fails(capsys, ["predict", str(files["image"]), "--model", str(files["model"]), "--out", out,
                    "--vector", str(tmp_path / "x.shp")], "x.shp", ".gpkg")
    _fails(capsys, ["predict", str(files["image"]), "--model", str(files["model"]), "--out", str(files["image"])],
           "--out", "input image")


def test_bad_option_values_are_usage_errors(files, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(files["image"]), "--model", str(files["model"]), "--out", "x.tif", "--overlap", "600"])
    assert exit_.value.code == 2 and "--overlap 600" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(files["image"]), "--out", "x.tif"])
    assert exit_.value.code == 2 and "--model" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "refine", "suggest"])
def test_help_of_every_command(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: dial {command} IMAGE --model M.pt" in text and "--out" in text


def test_help_as_a_program() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "dial_core.app.cli", "--help"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("predict", "refine", "suggest"):
        assert command in result.stdout
