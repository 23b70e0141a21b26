"""A researcher's own folder of images, through Snakemake exactly as the README says: the shipped
overlay (config/datasets/folder.yaml) with images in data/raw/mydata/, every mask style, the splits
own data needs, band selection, ground resolution, and re-preparation when raw files change."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from rasterio.transform import from_origin
from test_own_data import _tif
from test_workflow import ROOT, run_snakemake, tiny_params

FOLDER_OVERLAY = ROOT / "config" / "datasets" / "folder.yaml"


def _chip(rng: np.random.Generator, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """An RGB chip with bright rectangular roofs and its 0/255 building mask."""
    image = rng.integers(0, 110, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(4):
        r, c = rng.integers(0, size - 20, 2)
        mask[r:r + 18, c:c + 14] = 255
    image[mask == 255] += 120
    return image, mask


def write_png_folder(root: Path, names: list[str], seed: int = 0, size: int = 96) -> None:
    """PNG chips and 0/255 masks in <root>/images and <root>/masks (the overlay's default layout)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for name in names:
        image, mask = _chip(rng, size)
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def _workdir(tmp_path: Path, overlay: dict | None = None) -> list[str]:
    """params.yaml (tiny budgets) in ``tmp_path``; the --configfile arguments of a run with the
    shipped folder overlay and, when given, a small overlay of the test's own."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    files = [str(tmp_path / "params.yaml"), str(FOLDER_OVERLAY)]
    if overlay:
        (tmp_path / "own.yaml").write_text(yaml.safe_dump(overlay))
        files.append(str(tmp_path / "own.yaml"))
    return ["--configfile", *files]


def _data_all(tmp_path: Path, overlay: dict | None = None):
    return run_snakemake(tmp_path, "data_all", "--cores", "1", *_workdir(tmp_path, overlay))


def _split(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "data/processed/mydata/split.json").read_text())


# --------------------------------------------------------------------------- the whole DAG, as documented


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("own_folder")
    write_png_folder(workdir / "data/raw/mydata", [f"chip_{i}" for i in range(6)])
    result = run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1", *_workdir(workdir))
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.e2e
def test_shipped_folder_overlay_runs_the_whole_dag(folder_run: Path) -> None:
    info = json.loads((folder_run / "data/processed/mydata/dataset.json").read_text())
    assert [c["name"] for c in info["classes"]] == ["background", "building"]
    assert 0.05 < info["class_shares"]["building"] < 0.5  # 255 read as the building class, not ignore
    clicks = pd.read_csv(folder_run / "reports/tables/clicks.csv")
    assert set(clicks["dataset"]) == {"mydata"} and set(clicks["image"]) == set(_split(folder_run)["val"])
    assert "iou_building" in clicks.columns
    for figure in ("miou_vs_clicks.png", "miou_vs_patches.png"):
        assert (folder_run / "reports/figures" / figure).stat().st_size > 5000


@pytest.mark.e2e
def test_raw_file_changes_re_prepare_the_dataset(folder_run: Path) -> None:
    args = ["-n", "--cores", "1", "--configfile", str(folder_run / "params.yaml"), str(FOLDER_OVERLAY)]

    def planned() -> str:
        result = run_snakemake(folder_run, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    assert "Nothing to be done" in planned()
    raw = folder_run / "data/raw/mydata"
    mask = raw / "masks/chip_2.png"
    original = mask.read_bytes()
    edited = np.array(Image.open(mask))
    edited[:10, :10] = 255  # a corrected label (Snakemake compares content, not only the time stamp)
    Image.fromarray(edited).save(mask)
    os.utime(mask, (time.time() + 5, time.time() + 5))  # newer than dataset.json even on coarse clocks
    try:
        plan = planned()
        assert "rule prepare_dataset" in plan and "masks/chip_2.png" in plan and "rule pretrain" in plan
    finally:
        mask.write_bytes(original)
    write_png_folder(raw, ["chip_new"], seed=9)  # an added pair
    try:
        plan = planned()
        assert "rule prepare_dataset" in plan and "chip_new.png" in plan
    finally:
        for kind in ("images", "masks"):
            (raw / kind / "chip_new.png").unlink()
    assert "Nothing to be done" in planned()
    removed = (raw / "images/chip_5.png").read_bytes(), (raw / "masks/chip_5.png").read_bytes()
    for kind in ("images", "masks"):
        (raw / kind / "chip_5.png").unlink()  # a removed pair
    try:
        plan = planned()
        assert "rule prepare_dataset" in plan and "Set of input files has changed" in plan
    finally:
        for kind, data in zip(("images", "masks"), removed):
            (raw / kind / "chip_5.png").write_bytes(data)


# ------------------------------------------------------------------------------ mask styles and bands


@pytest.mark.e2e
def test_grey_rgb_masks_and_band_selection_through_params(tmp_path: Path) -> None:
    """Drone-style chips: 4-band GeoTIFFs (RGB + NIR) and grey-level RGB masks of values 0 / 1 / 2."""
    rng = np.random.default_rng(1)
    raw = tmp_path / "drone"
    for i in range(3):
        values = rng.choice([0, 1, 2], (64, 64)).astype(np.uint8)
        _tif(raw / "img" / f"d{i}.tif", rng.integers(0, 256, (4, 64, 64), dtype=np.uint8))
        Image.fromarray(np.repeat(values[..., None] * 40, 3, axis=-1)).save((raw / "gt").mkdir(exist_ok=True) or raw / "gt" / f"d{i}.png")
    folder = {"images": str(raw / "img"), "masks": str(raw / "gt"),
              "classes": [{"name": "soil", "value": 0}, {"name": "crop", "value": 40}, {"name": "weed", "value": 80}]}
    failed = _data_all(tmp_path, {"dataset": {"folder": folder}})
    assert failed.returncode != 0
    log = (tmp_path / "logs/mydata/prepare.log").read_text()
    assert "has 4 bands" in log and "dataset.folder.bands: [1, 2, 3]" in log and "Traceback" not in log
    result = _data_all(tmp_path, {"dataset": {"folder": {**folder, "bands": [1, 2, 3]}}})
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "data/processed/mydata/dataset.json").read_text())
    assert set(info["class_shares"]) == {"soil", "crop", "weed"} and min(info["class_shares"].values()) > 0.2
    assert "bands [1, 2, 3] read as R, G, B" in (tmp_path / "logs/mydata/prepare.log").read_text()


def test_undeclared_255_fails_with_what_255_may_mean(tmp_path: Path) -> None:
    write_png_folder(tmp_path / "data/raw/mydata", ["a", "b", "c"])
    classes = [{"name": "background", "value": 0}, {"name": "building", "value": 1}]
    result = _data_all(tmp_path, {"dataset": {"folder": {"classes": classes}}})
    assert result.returncode != 0
    log = (tmp_path / "logs/mydata/prepare.log").read_text()
    assert "value 255" in log and "0/255 masks" in log and "ignore_values" in log
    assert not (tmp_path / "data/processed/mydata/dataset.json").exists()


# ----------------------------------------------------------------------------------------- splits


@pytest.mark.e2e
def test_validation_subfolder(tmp_path: Path) -> None:
    write_png_folder(tmp_path / "data/raw/mydata", ["t1", "t2", "t3"])
    write_png_folder(tmp_path / "data/raw/mydata/val", ["v1"], seed=2)
    folder = {"val_images": "data/raw/mydata/val/images", "val_masks": "data/raw/mydata/val/masks"}
    random = _data_all(tmp_path, {"dataset": {"folder": folder}})
    assert random.returncode != 0 and "split.mode: predefined" in (tmp_path / "logs/mydata/split.log").read_text()
    result = _data_all(tmp_path, {"dataset": {"folder": folder}, "split": {"mode": "predefined"}})
    assert result.returncode == 0, result.stderr[-3000:]
    split = _split(tmp_path)
    assert sorted(split["train"] + split["calibration"]) == ["t1", "t2", "t3"] and split["val"] == ["v1"]
    assert split["mode"] == "predefined" and len(split["calibration"]) == 1  # tiny_params: 1 held out for calibrate_disca


@pytest.mark.e2e
def test_validation_list_file(tmp_path: Path) -> None:
    write_png_folder(tmp_path / "data/raw/mydata", ["a", "b", "c", "d"])
    (tmp_path / "val.txt").write_text("# held out\nb.png\nd\n")
    result = _data_all(tmp_path, {"split": {"mode": "list", "val_list": "val.txt"}})
    assert result.returncode == 0, result.stderr[-3000:]
    assert _split(tmp_path)["val"] == ["b", "d"] and _split(tmp_path)["val_list"] == "val.txt"
    (tmp_path / "val.txt").write_text("a\n")  # editing the list re-splits
    result = run_snakemake(tmp_path, "data_all", "--cores", "1", *_workdir(tmp_path, {"split": {"mode": "list", "val_list": "val.txt"}}))
    assert result.returncode == 0 and _split(tmp_path)["val"] == ["a"]


@pytest.mark.e2e  # a Snakemake run of the data phase (20–30 s): ./dial test stays under 10 min on 2 cores
def test_scene_groups_from_a_file_name_pattern_and_gsd_from_the_transform(tmp_path: Path) -> None:
    """Georeferenced chips of 4 scenes (UTM, 0.3 m): no scene straddles train and val; gsd from the grid."""
    rng = np.random.default_rng(3)
    raw = tmp_path / "data/raw/mydata"
    for scene in range(4):
        for k in range(3):
            image, mask = _chip(rng, 64)
            transform = from_origin(500_000 + scene * 1000 + k * 64 * 0.3, 5_000_000, 0.3, 0.3)
            _tif(raw / "images" / f"city{scene}_{k}.tif", np.moveaxis(image, -1, 0), transform, "EPSG:32631")
            _tif(raw / "masks" / f"city{scene}_{k}.tif", mask[None], transform, "EPSG:32631")
    result = _data_all(tmp_path, {"split": {"group_pattern": r"^(city\d+)_\d+$", "val_fraction": 0.25}})
    assert result.returncode == 0, result.stderr[-3000:]
    split = _split(tmp_path)
    scenes = {side: {i.split("_")[0] for i in split[side]} for side in ("train", "val")}
    assert len(scenes["val"]) == 1 and not scenes["train"] & scenes["val"] and len(split["val"]) == 3
    held = {i.split("_")[0] for i in split["calibration"]}  # calibration images: whole scenes too
    assert held and not held & scenes["train"] and not held & scenes["val"]
    assert split["grouping"]["pattern"] == r"^(city\d+)_\d+$"
    info = json.loads((tmp_path / "data/processed/mydata/dataset.json").read_text())
    assert info["ground_sampling_distance_m"] == pytest.approx(0.3)
    assert info["ground_sampling_distance_from"].startswith("GeoTIFF transform")


@pytest.mark.e2e
def test_one_large_scene_split_into_spatial_blocks(tmp_path: Path) -> None:
    write_png_folder(tmp_path / "data/raw/mydata", ["scene"], size=400)
    one = _data_all(tmp_path)
    assert one.returncode != 0
    message = (tmp_path / "logs/mydata/split.log").read_text()
    assert "has 1" in message and "split.mode: blocks" in message and "split.val_list" in message and "val_images" in message
    result = _data_all(tmp_path, {"split": {"mode": "blocks", "blocks": {"size": 128, "buffer": 16}, "val_fraction": 0.25}})
    assert result.returncode == 0, result.stderr[-3000:]
    split = _split(tmp_path)
    assert len(split["train"] + split["calibration"] + split["val"]) == 9 and len(split["val"]) == 2  # 3 × 3 blocks, 144 px apart
    assert split["blocks"]["size"] == 128 and split["blocks"]["buffer"] == 16
    windows = split["blocks"]["windows"]
    assert windows["scene_r01_c02"] == {"scene": "scene", "row_off": 144, "col_off": 288, "height": 128, "width": 112}
    tiles = pd.read_csv(tmp_path / "data/processed/mydata/tiles.csv")
    assert set(tiles["id"]) == set(windows)
