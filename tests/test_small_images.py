"""Researchers' own data: images smaller than the training crop or the inference window (the sizes
actually used are fitted to them, with a warning), and evaluation of large folders on a seeded,
recorded selection of validation images with per-image progress in the job's log."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dial_core.data.canonical import DatasetInfo, Sample, load_info, write_dataset
from dial_core.data.tiling import SIZE_MULTIPLE, fit_tiling, fit_window
from dial_core.errors import ConfigError, DataError
from dial_core.evaluation.selection import select_images
from dial_core.models import segmenter as segmenter_module
from dial_core.steps import evaluate_clicks, evaluate_patches, pretrain_network, train_confidnet_step

torch.set_num_threads(2)

CLASSES = [{"name": n, "color": c} for n, c in (("road", [200, 60, 60]), ("roof", [60, 200, 60]), ("tree", [60, 60, 200]))]
TRAIN_SHAPES = {"t0": (64, 96), "t1": (96, 64), "t2": (70, 130)}  # all smaller than the 128 px crop
VAL_SHAPES = {"v0": (64, 64), "v1": (96, 128), "v2": (64, 100), "v3": (80, 80)}
NETWORK = {"arch": "linknet", "encoder": "resnet18", "encoder_weights": None, "encoding": "dt", "radius": 5,
           "annotation": "per_class", "click_position": "inside", "frequency_balancing": True, "train_fraction": 1.0}
TRAIN = {"epochs": 1, "crops_per_epoch": 4, "crop_size": 128, "batch_size": 2, "lr": 0.01, "momentum": 0.9,
         "weight_decay": 5e-4, "milestones": [], "gamma": 0.1, "click_probability": 0.7, "max_clicks": 3,
         "checkpoint_every": 1, "mixed_precision": False, "divergence_factor": 1000}
EVALUATION = {"agent": "largest_mistake_centre", "max_images": None, "clicks": {"n_clicks": 2, "methods": ["ac"]},
              "patches": {"size": 32, "max_patches": 3, "methods": ["ac"], "acquisitions": ["random"]},
              "disca": {"lr": 0.01, "steps": 1, "regularisation": 1.0, "ac_drop_probability": 0.2, "window": 64}}
TILING = {"size": 128, "overlap": 64}


def _scene(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    label = np.zeros((h, w), np.uint8)
    label[:, int(rng.integers(w // 4, 3 * w // 4)):] = 1
    label[int(rng.integers(h // 4, 3 * h // 4)):, : w // 3] = 2
    palette = np.array([c["color"] for c in CLASSES])
    image = np.clip(palette[label] + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    return image, label


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> tuple[Path, DatasetInfo, dict]:
    """A canonical dataset of rectangular images, every one smaller than crop_size and tiling.size."""
    root = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    shapes = {**TRAIN_SHAPES, **VAL_SHAPES}
    samples = [Sample(i, *_scene(s, rng)) for i, s in shapes.items()]
    info = DatasetInfo(name="small", classes=CLASSES, ground_sampling_distance_m=None, source="test", licence="none")
    write_dataset(root, info, samples)
    return root, load_info(root), {"train": list(TRAIN_SHAPES), "val": list(VAL_SHAPES)}


@pytest.fixture(scope="module")
def pretrained(small_dataset):
    root, info, split = small_dataset
    return pretrain_network(root, info, split, NETWORK, TRAIN, TILING, seed=0, device=torch.device("cpu"),
                            threads=2, state_path=None)


# --------------------------------------------------------------------------------------------
# the fit of a window to small images
# --------------------------------------------------------------------------------------------


def test_fit_window_keeps_the_setting_when_every_image_is_large_enough(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert fit_window(128, {"a": (128, 128), "b": (300, 129)}, "pretrain.crop_size") == 128
        assert fit_window(512, {}, "tiling.size") == 512
        assert fit_tiling(384, 64, {"a": (384, 1000)}) == (384, 64)
    assert not caplog.records


@pytest.mark.parametrize("smallest", [32, 33, 63, 64, 100, 127, 200, 383])
def test_fit_window_takes_the_largest_multiple_of_32_that_fits(smallest: int) -> None:
    window = fit_window(384, {"big": (2000, 2000), "small": (smallest, 1000)}, "tiling.size")
    assert window % SIZE_MULTIPLE == 0 and 32 <= window <= smallest < window + 32
    assert SIZE_MULTIPLE == segmenter_module.SIZE_MULTIPLE


def test_fit_window_warning_names_the_setting_the_images_and_their_sizes(caplog) -> None:
    sides = {"big": (500, 500), "wide": (100, 260), "tall": (90, 70)}
    with caplog.at_level(logging.WARNING, logger="dial_core"):
        assert fit_window(128, sides, "pretrain.crop_size") == 64
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    for part in ("pretrain.crop_size = 128", "2 of 3 images", "tall (90×70)", "wide (100×260)", "using 64 px",
                 "smallest side (70 px)", "at most 64"):
        assert part in message, part
    assert "big" not in message


def test_fit_window_lists_a_few_images_and_counts_the_rest(caplog) -> None:
    sides = {f"img{i:02d}": (64, 64) for i in range(30)}
    with caplog.at_level(logging.WARNING, logger="dial_core"):
        fit_window(128, sides, "tiling.size")
    message = caplog.records[0].getMessage()
    assert "30 of 30 images" in message and "img00 (64×64)" in message and "and 22 more" in message


def test_an_image_under_32_px_is_an_error_naming_it() -> None:
    with pytest.raises(DataError) as err:
        fit_window(128, {"fine": (400, 400), "sliver": (20, 300)}, "pretrain.crop_size")
    assert "sliver (20×300)" in str(err.value) and "32 px" in str(err.value) and "fine" not in str(err.value)


def test_fit_tiling_keeps_the_overlap_share_of_a_clamped_window() -> None:
    assert fit_tiling(384, 64, {"a": (100, 500)}) == (96, 16)
    assert fit_tiling(512, 128, {"a": (509, 544)}) == (480, 120)  # the smallest Dubai tile
    for side in range(32, 400, 7):
        window, overlap = fit_tiling(384, 383, {"a": (side, side)})
        assert 0 <= overlap < window


# --------------------------------------------------------------------------------------------
# the selection of evaluation images
# --------------------------------------------------------------------------------------------

VAL = [f"img{i:03d}" for i in range(20)]


def test_select_images_keeps_every_image_for_null_or_too_many() -> None:
    for max_images in (None, 20, 50):
        selection = select_images(VAL, max_images, seed=3)
        assert selection == {"seed": 3, "max_images": max_images, "n_val": 20, "images": VAL}


def test_select_images_is_a_seeded_reproducible_nested_subset() -> None:
    a = select_images(VAL, 5, seed=0)
    assert a["max_images"] == 5 and a["seed"] == 0 and a["n_val"] == 20
    assert len(a["images"]) == 5 and set(a["images"]) <= set(VAL)
    assert a["images"] == sorted(a["images"], key=VAL.index)  # in the split's order
    assert a == select_images(VAL, 5, seed=0)
    assert a["images"] != select_images(VAL, 5, seed=1)["images"]
    assert set(select_images(VAL, 3, seed=0)["images"]) < set(a["images"]) < set(select_images(VAL, 8, seed=0)["images"])
    assert json.loads(json.dumps(a)) == a


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_select_images_rejects_a_bad_count(bad) -> None:
    with pytest.raises(ConfigError, match="evaluation.max_images"):
        select_images(VAL, bad, seed=0)


# --------------------------------------------------------------------------------------------
# the steps on images smaller than the crop and the window
# --------------------------------------------------------------------------------------------


def test_pretraining_on_images_smaller_than_the_crop_uses_and_records_the_fitted_crop(small_dataset, monkeypatch, caplog) -> None:
    import dial_core.steps as steps

    root, info, split = small_dataset
    seen = []
    original = steps.pretrain

    def spy(spec, source, policy, cfg, *args, **kwargs):
        seen.append(cfg.crop_size)
        return original(spec, source, policy, cfg, *args, **kwargs)

    monkeypatch.setattr(steps, "pretrain", spy)
    with caplog.at_level(logging.WARNING, logger="dial_core"):
        model, metrics = pretrain_network(root, info, split, NETWORK, TRAIN, TILING, seed=0,
                                          device=torch.device("cpu"), threads=2, state_path=None)
    assert seen == [64]  # the smallest training side is 64 px
    assert metrics["crop_size"] == 64 and (metrics["inference_window"], metrics["inference_overlap"]) == (64, 32)
    assert 0.0 <= metrics["val_miou"] <= 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    crop = next(w for w in warnings if w.startswith("pretrain.crop_size = 128"))
    assert "3 of 3 images" in crop and "t0 (64×96)" in crop and "t2 (70×130)" in crop and "using 64 px" in crop
    window = next(w for w in warnings if w.startswith("tiling.size = 128"))
    assert "v0 (64×64)" in window and "v1 (96×128)" in window


def test_confidnet_crops_are_fitted_too(small_dataset, pretrained) -> None:
    root, info, split = small_dataset
    params = {"epochs": 1, "crops_per_epoch": 2, "batch_size": 2, "lr": 1e-4, "click_probability": 0.0}
    _, metrics = train_confidnet_step(root, info, split, pretrained[0], params, TRAIN, 0, torch.device("cpu"), 2)
    assert metrics["crop_size"] == 64


def test_evaluation_window_is_fitted_to_small_validation_images(small_dataset, pretrained, caplog) -> None:
    root, info, split = small_dataset
    model = pretrained[0]
    with caplog.at_level(logging.INFO, logger="dial_core"):
        table = evaluate_clicks(root, info, split["val"], model, "ac", EVALUATION, TILING, 0, "linknet", images=["v0", "v2"])
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("tiling.size = 128 px does not fit 4 of 4 images") and "v2 (64×100)" in m for m in messages)
    assert any("inference window 64 px, overlap 32 px" in m for m in messages)
    # the same numbers as asking for the fitted window directly (and that request warns about nothing)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dial_core"):
        fitted = evaluate_clicks(root, info, split["val"], model, "ac", EVALUATION, {"size": 64, "overlap": 32}, 0, "linknet",
                                 images=["v0", "v2"])
    assert not caplog.records
    columns = [c for c in table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(table[columns], fitted[columns])


def test_evaluation_logs_progress_per_image(small_dataset, pretrained, caplog) -> None:
    root, info, split = small_dataset
    with caplog.at_level(logging.INFO, logger="dial_core"):
        evaluate_patches(root, info, split["val"], pretrained[0], None, "ac", "random", EVALUATION, TILING, 0, "linknet",
                         images=["v1", "v3"])
    progress = [r.getMessage() for r in caplog.records if ": image " in r.getMessage()]
    assert len(progress) == 2
    assert progress[0].startswith("patches linknet/ac/random: image 1/2 v1 (96×128): 3 patches done")
    assert progress[1].startswith("patches linknet/ac/random: image 2/2 v3 (80×80): 3 patches done")
    assert all("s elapsed" in line and "clicks placed" in line for line in progress)


def test_an_image_keeps_its_rows_whichever_selection_it_is_in(small_dataset, pretrained) -> None:
    """Generators are seeded by the image's place in the val list, not in the selection."""
    root, info, split = small_dataset
    run = lambda images: evaluate_patches(root, info, split["val"], pretrained[0], None, "ac", "random",  # noqa: E731
                                          EVALUATION, TILING, 0, "linknet", images=images)
    every, one = run(None), run(["v2"])
    assert set(every["image"]) == set(VAL_SHAPES) and set(one["image"]) == {"v2"}
    columns = ["step", "patch", "miou", "click_row", "click_col"]
    pd.testing.assert_frame_equal(every[every["image"] == "v2"][columns].reset_index(drop=True), one[columns])
    with pytest.raises(DataError, match="t0"):
        run(["t0"])


# --------------------------------------------------------------------------------------------
# the workflow as a user runs it
# --------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_workflow_on_small_images_with_max_images(tmp_path: Path) -> None:
    """Snakemake on 64 px scenes with a 128 px crop and window and max_images 2 of 4 validation images:
    fitted sizes recorded and warned about, the selection recorded and used, progress in the logs."""
    from test_workflow import run_snakemake, tiny_params

    params = tiny_params()
    params["dataset"]["synthetic"].update(n_images=8, size=64)
    params["split"]["val_fraction"] = 0.5
    params["tiling"].update(size=128, overlap=32)
    params["pretrain"].update(epochs=1, crops_per_epoch=4, crop_size=128, batch_size=2, milestones=[])
    params["evaluation"]["max_images"] = 2
    params["transfer"]["targets"] = []
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_snakemake(tmp_path, "reports/tables/clicks/synthetic/linknet/ac.csv", "--cores", "2", "--resources", "gpu=1")
    assert result.returncode == 0, result.stderr[-4000:]

    metrics = json.loads((tmp_path / "reports/metrics/pretrain/synthetic/linknet.json").read_text())
    assert metrics["crop_size"] == 64 and metrics["inference_window"] == 64
    pretrain_log = (tmp_path / "logs/synthetic/pretrain_linknet.log").read_text()
    assert "pretrain.crop_size = 128 px does not fit 3 of 3 images" in pretrain_log  # 1 of 4 held out to calibrate and "(64×64)" in pretrain_log

    val = json.loads((tmp_path / "data/processed/synthetic/split.json").read_text())["val"]
    selection = json.loads((tmp_path / "reports/tables/evaluation_images/synthetic.json").read_text())
    assert len(val) == 4
    assert selection == {"dataset": "synthetic", **select_images(val, 2, params["seed"])}
    assert selection["max_images"] == 2 and len(selection["images"]) == 2 and set(selection["images"]) < set(val)

    rows = pd.read_csv(tmp_path / "reports/tables/clicks/synthetic/linknet/ac.csv")
    assert list(dict.fromkeys(rows["image"])) == selection["images"]
    text = (tmp_path / "logs/synthetic/clicks_linknet_ac.log").read_text()
    assert "tiling.size = 128 px does not fit 4 of 4 images" in text and "inference window 64 px" in text
    for n, image_id in enumerate(selection["images"], 1):
        line = next(x for x in text.splitlines() if f"clicks linknet/ac: image {n}/2 {image_id} (64×64): " in x)
        assert "2 clicks done" in line and "s elapsed" in line
