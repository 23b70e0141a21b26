"""ALCD, DIAL Fig. 5's random-forest baseline: pixel features, pre-training on sampled training
pixels, the refit with every click, and tables with the networks' columns."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import dial_core.evaluation.alcd_protocol as alcd_protocol
import dial_core.steps as steps
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError, DataError
from dial_core.evaluation.alcd_protocol import alcd_click_protocol
from dial_core.evaluation.protocols import click_protocol
from dial_core.interactive.alcd import (
    AlcdConfig,
    fit_forest,
    load_alcd_samples,
    pixel_features,
    predict_proba_map,
    sample_training_pixels,
    save_alcd_samples,
    with_clicks,
)
from dial_core.models.segmenter import NetworkSpec, Segmenter

CLASSES = ["road", "roof"]
RED, GREEN, ODD = (200, 60, 60), (60, 200, 60), (10, 250, 10)  # ODD: greener than any green, labelled road
CFG = AlcdConfig(samples_per_image=300, n_estimators=50, max_depth=None, min_samples_leaf=1, scales=(3,), seed=0)
BLOCK = (slice(10, 15), slice(20, 25))  # a 5 × 5 block in the green half
CENTRE = (12, 22)


def two_colours(rng: np.random.Generator, size: int = 32, odd_block: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Left half red (class 0), right half green (class 1), a little noise; ``odd_block``: a block
    of a colour no training image has, labelled 0 inside the green half (the forest gets it wrong)."""
    label = np.zeros((size, size), np.uint8)
    label[:, size // 2 :] = 1
    image = np.array([RED, GREEN])[label] + rng.normal(0, 5, (size, size, 3))
    if odd_block:
        image[BLOCK] = ODD
        label[BLOCK] = 0
    return np.clip(image, 0, 255).astype(np.uint8), label


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    return sample_training_pixels([two_colours(rng) for _ in range(2)], CFG.samples_per_image, rng, CFG.scales)


def test_pixel_features_shape_and_values():
    constant = np.full((6, 5, 3), (10, 20, 30), np.uint8)
    f = pixel_features(constant, (3, 5))
    assert f.shape == (6, 5, 3 + 6 * 2) and f.dtype == np.float32
    assert np.allclose(f[..., :3], (10, 20, 30))
    for k in range(2):  # per scale: the local means, then the local standard deviations
        assert np.allclose(f[..., 3 + 6 * k : 6 + 6 * k], (10, 20, 30))
        assert np.allclose(f[..., 6 + 6 * k : 9 + 6 * k], 0)
    spot = np.zeros((5, 5, 3), np.uint8)
    spot[2, 2] = 90  # one bright pixel: at the centre a 3 × 3 window holds it once in 9
    f = pixel_features(spot, (3,))
    assert f[2, 2, 3] == pytest.approx(10.0)  # mean 90 / 9
    assert f[2, 2, 6] == pytest.approx(np.sqrt(90**2 / 9 - 10**2), rel=1e-5)  # E[x²] − E[x]²
    assert f[0, 0, 3] == 0 and f[1, 1, 3] == pytest.approx(10.0)  # the window reaches it from (1, 1), not (0, 0)


def test_sampling_draws_labelled_pixels_per_image(samples):
    X, y = samples
    assert X.shape == (600, CFG.n_features) and X.dtype == np.float32 and y.dtype == np.uint8
    image, label = two_colours(np.random.default_rng(1))
    label[:, :10] = 255  # ignored: never drawn
    _, yi = sample_training_pixels([(image, label)], 10_000, np.random.default_rng(0), CFG.scales)
    assert len(yi) == int((label != 255).sum()) and set(yi.tolist()) == {0, 1}  # fewer than asked: all of them
    again = sample_training_pixels([(image, label)], 50, np.random.default_rng(3), CFG.scales)
    assert np.array_equal(again[0], sample_training_pixels([(image, label)], 50, np.random.default_rng(3), CFG.scales)[0])


def test_pretrained_forest_predicts_the_two_colours(samples):
    forest = fit_forest(*samples, CFG)
    image, label = two_colours(np.random.default_rng(5))
    probs = predict_proba_map(forest, pixel_features(image, CFG.scales), 3)  # a third class it never saw
    assert probs.shape == (3, 32, 32) and probs.dtype == np.float32
    assert np.all(probs[2] == 0) and np.allclose(probs.sum(0), 1)
    assert (probs.argmax(0) == label).mean() > 0.98


def test_a_click_refits_the_forest_and_corrects_its_pixel(samples):
    X, y = samples
    image, _ = two_colours(np.random.default_rng(6), odd_block=True)
    features = pixel_features(image, CFG.scales)
    before = predict_proba_map(fit_forest(X, y, CFG), features, 2).argmax(0)
    assert before[CENTRE] == 1  # the odd colour looks greener than green: wrong
    X1, y1 = with_clicks(X, y, features, [Click(*CENTRE, 0)])
    assert len(X1) == len(X) + 1 and y1[-1] == 0 and np.array_equal(X1[-1], features[CENTRE])
    after = predict_proba_map(fit_forest(X1, y1, CFG), features, 2).argmax(0)
    assert after[CENTRE] == 0


def test_protocol_refits_with_all_clicks_so_far(samples, monkeypatch):
    X, y = samples
    image, label = two_colours(np.random.default_rng(6), odd_block=True)
    sizes: list[int] = []

    def spy(Xs, ys, cfg):
        sizes.append(len(Xs))
        return fit_forest(Xs, ys, cfg)

    monkeypatch.setattr(alcd_protocol, "fit_forest", spy)
    rows = alcd_click_protocol(X, y, CFG, image, label, CLASSES, 2, "largest_mistake_centre", {}, np.random.default_rng(0))
    assert sizes == [len(X), len(X) + 1, len(X) + 2]  # pre-trained, then X + every click so far
    assert (rows[1]["click_row"], rows[1]["click_col"], rows[1]["click_class"]) == (*CENTRE, 0)  # the block's centre
    assert rows[1]["corrected_pixels"] > 0 and rows[1]["miou"] > rows[0]["miou"]


def test_protocol_rows_match_click_protocol_and_are_deterministic(samples, one_torch_thread):
    X, y = samples
    image, label = two_colours(np.random.default_rng(6), odd_block=True)
    run = [alcd_click_protocol(X, y, CFG, image, label, CLASSES, 3, "random_in_mistake", {}, np.random.default_rng(4))
           for _ in range(2)]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rows] for rows in run]
    assert strip[0] == strip[1] and len(run[0]) == 4
    torch.manual_seed(0)
    net = Segmenter(NetworkSpec("linknet", "resnet18", 2, encoding="dt", radius=5.0)).eval()
    evaluation = {"agent": "random_in_mistake", "agent_options": {},
                  "disca": {"lr": 0.01, "steps": 1, "regularisation": 1.0, "ac_drop_probability": 1.0, "window": 32}}
    cfg = steps.interaction_config("ac", evaluation, {"size": 32, "overlap": 0})
    network_rows = click_protocol(net, image, label, CLASSES, 1, cfg, np.random.default_rng(4))
    assert list(network_rows[0]) == list(run[0][0]) and list(network_rows[1]) == list(run[0][1])


def _patch_readers(monkeypatch, scenes: dict, read: list | None = None) -> SimpleNamespace:
    def image(root, i):
        if read is not None:
            read.append(i)
        return scenes[i][0]

    monkeypatch.setattr(steps, "read_image", image)
    monkeypatch.setattr(steps, "read_label", lambda root, i: scenes[i][1])
    monkeypatch.setattr(steps, "raster_shape", lambda root, i: scenes[i][1].shape)
    return SimpleNamespace(name="toy", class_names=CLASSES, n_classes=2, ignore_index=255)


PARAMS = {"samples_per_image": 200, "n_estimators": 20, "max_depth": 10, "min_samples_leaf": 1, "scales": [3, 7]}


def test_pretrain_reads_training_images_only_and_scores_validation(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    scenes = {i: two_colours(rng) for i in ("t0", "t1", "c0", "v0")}
    read: list[str] = []
    info = _patch_readers(monkeypatch, scenes, read)
    split = {"train": ["t0", "t1"], "calibration": ["c0"], "val": ["v0"]}
    X, y, metrics = steps.pretrain_alcd(tmp_path, info, split, PARAMS, seed=0)
    assert "c0" not in read and read.count("v0") == 1  # validation: scored only, never sampled
    assert X.shape == (400, 3 + 6 * 2) and metrics["samples"] == 400 and metrics["train_images"] == 2
    assert metrics["val_miou"] > 0.95 and set(metrics["val_iou"]) == set(CLASSES)
    again = steps.pretrain_alcd(tmp_path, info, split, PARAMS, seed=0)
    assert np.array_equal(X, again[0]) and np.array_equal(y, again[1])
    save_alcd_samples(tmp_path / "alcd" / "samples.npz", X, y, metrics)
    X2, y2, m2 = load_alcd_samples(tmp_path / "alcd" / "samples.npz")
    assert np.array_equal(X, X2) and np.array_equal(y, y2) and X2.dtype == np.float32 and y2.dtype == np.uint8
    assert m2["val_miou"] == pytest.approx(metrics["val_miou"]) and m2["scales"] == [3, 7]
    with pytest.raises(DataError, match="missing.npz"):
        load_alcd_samples(tmp_path / "missing.npz")


def test_evaluation_table_has_the_networks_columns(tmp_path, monkeypatch, one_torch_thread):
    rng = np.random.default_rng(3)
    scenes = {"t0": two_colours(rng), "v0": two_colours(rng, odd_block=True), "v1": two_colours(rng)}
    info = _patch_readers(monkeypatch, scenes)
    X, y, _ = steps.pretrain_alcd(tmp_path, info, {"train": ["t0"], "val": []}, PARAMS, seed=0)
    evaluation = {"agent": "largest_mistake_centre", "agent_options": {}, "clicks": {"n_clicks": 2},
                  "disca": {"lr": 0.01, "steps": 1, "regularisation": 1.0, "ac_drop_probability": 1.0, "window": 32}}
    table = steps.evaluate_clicks_alcd(tmp_path, info, ["v0", "v1"], X, y, PARAMS, evaluation, 0, "forest",
                                       train_dataset="other", images=["v1"])
    torch.manual_seed(0)
    net = Segmenter(NetworkSpec("linknet", "resnet18", 2, encoding="dt", radius=5.0)).eval()
    network = steps.evaluate_clicks(tmp_path, info, ["v0", "v1"], net, "ac", evaluation, {"size": 32, "overlap": 0}, 0, "linknet",
                                    train_dataset="other", images=["v1"])
    assert list(table.columns) == list(network.columns)
    assert len(table) == 3 and set(table["method"]) == {"alcd"} and set(table["encoding"]) == {"none"}
    assert set(table["model"]) == {"forest"} and set(table["image"]) == {"v1"} and set(table["train_dataset"]) == {"other"}
    with pytest.raises(ConfigError, match="re-run pretrain_alcd"):
        steps.evaluate_clicks_alcd(tmp_path, info, ["v0"], X, y, {**PARAMS, "scales": [3]}, evaluation, 0, "forest")
    with pytest.raises(ConfigError, match="n_estimators"):
        steps.alcd_config({k: v for k, v in PARAMS.items() if k != "n_estimators"}, 0)
