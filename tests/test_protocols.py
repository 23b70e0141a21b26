"""Tests for metrics, acquisition functions, DISCA and the simulated click / patch protocols."""

import copy
import math

import numpy as np
import pytest
import torch
from conftest import briefly_pretrained, toy_scene

from dial_core.active.acquisition import (
    entropy_map,
    patch_scores,
    random_order,
    uncertainty_order,
)
from dial_core.active.uncertainty import predict_with_uncertainty
from dial_core.clicks.agents import largest_mistake_click
from dial_core.clicks.encoding import encode_clicks
from dial_core.clicks.types import Click
from dial_core.data.tiling import tile_windows
from dial_core.errors import ConfigError
from dial_core.evaluation.metrics import confusion_matrix, iou_per_class, number_of_clicks, segmentation_scores
from dial_core.evaluation.protocols import InteractionConfig, click_protocol, patch_protocol
from dial_core.interactive.disca import DiscaConfig, disca_adapt, disca_loss
from dial_core.interactive.inference import forward_window, predict_probs
from dial_core.models.confidnet import ConfidNet
from dial_core.models.segmenter import network_input

torch.set_num_threads(2)

CLASS_NAMES = ["road", "roof", "tree"]
N = len(CLASS_NAMES)
WINDOW, OVERLAP = 64, 32


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The shared toy scene with a small patch of class 2 at the right border."""
    return toy_scene(rng, border_patch=True)


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def model():
    """LinkNet-ResNet18 pretrained for one short epoch: imperfect, so there are mistakes to click."""
    rng = np.random.default_rng(0)
    return briefly_pretrained([_scene(rng) for _ in range(3)], N)


@pytest.fixture(scope="module")
def sample():
    return _scene(np.random.default_rng(100))


def _cfg(method: str = "ac", steps: int = 2, lr: float = 0.01) -> InteractionConfig:
    return InteractionConfig(method=method, agent="largest_mistake_centre",
                             disca=DiscaConfig(lr=lr, steps=steps, regularisation=1.0, ac_drop_probability=0.2),
                             window=WINDOW, overlap=OVERLAP)


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def test_confusion_matrix_and_scores():
    label = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = confusion_matrix(label, pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    iou = iou_per_class(cm)
    np.testing.assert_allclose(iou, [1 / 3, 2 / 3, 1 / 2])
    scores = segmentation_scores(label, pred, 3)
    assert scores["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert scores["accuracy"] == pytest.approx(4 / 6)  # ignore pixels do not count
    assert scores["correct_pixels"] == 4
    np.testing.assert_allclose(scores["iou"], iou)


def test_absent_class_has_nan_iou_and_is_left_out_of_miou():
    label = np.array([[0, 0], [1, 1]], np.uint8)
    pred = np.array([[0, 1], [1, 1]])
    scores = segmentation_scores(label, pred, 4)
    assert math.isnan(scores["iou"][2]) and math.isnan(scores["iou"][3])
    assert scores["iou"][0] == pytest.approx(0.5) and scores["iou"][1] == pytest.approx(2 / 3)
    assert scores["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    # a class only predicted (not in GT) has IoU 0, not NaN
    assert segmentation_scores(label, np.full((2, 2), 3), 4)["iou"][3] == 0.0


def test_custom_ignore_index_and_all_ignored():
    label = np.array([[0, 9], [1, 9]], np.uint8)
    pred = np.array([[0, 0], [0, 1]])
    assert segmentation_scores(label, pred, 2, ignore_index=9)["accuracy"] == pytest.approx(0.5)
    empty = segmentation_scores(np.full((2, 2), 255, np.uint8), pred, 2)
    assert math.isnan(empty["miou"]) and math.isnan(empty["accuracy"]) and empty["correct_pixels"] == 0


def test_number_of_clicks():
    curve = [0.5, 0.7, 0.86, 0.84, 0.91]
    assert number_of_clicks(curve, 0.85, 20) == 2
    assert number_of_clicks(curve, 0.9, 20) == 4
    assert number_of_clicks(curve, 0.5, 20) == 0
    assert number_of_clicks(curve, 0.95, 20) == 20  # never reached -> budget
    assert number_of_clicks(np.array([0.86]), 0.86, 3) == 0  # reaching the threshold counts


# --------------------------------------------------------------------------------------------
# acquisition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 6])
def test_entropy_extremes(n):
    uniform = np.full((n, 4, 5), 1.0 / n)
    np.testing.assert_allclose(entropy_map(uniform), np.full((4, 5), np.log(n)))
    one_hot = np.zeros((n, 4, 5))
    one_hot[n - 1] = 1.0
    np.testing.assert_allclose(entropy_map(one_hot), 0.0, atol=1e-9)


def test_entropy_values_between_extremes():
    p = np.array([0.7, 0.2, 0.1]).reshape(3, 1, 1)
    expected = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    assert entropy_map(p)[0, 0] == pytest.approx(expected)
    assert 0 < expected < np.log(3)


def test_patch_scores_are_window_means():
    u = np.arange(16, dtype=float).reshape(4, 4)
    windows = [(0, 0, 2, 2), (2, 2, 2, 2), (0, 1, 1, 3), (0, 0, 4, 4)]
    np.testing.assert_allclose(patch_scores(u, windows), [2.5, 12.5, 2.0, 7.5])


def test_uncertainty_order_descending_with_exclusion_and_stable_ties():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
    assert uncertainty_order(scores) == [1, 3, 2, 4, 0]
    assert uncertainty_order(scores, {1, 2}) == [3, 4, 0]
    assert uncertainty_order(scores, frozenset(range(5))) == []


def test_random_order_is_seeded_permutation():
    a = random_order(10, np.random.default_rng(4))
    assert sorted(a) == list(range(10))
    assert a == random_order(10, np.random.default_rng(4))
    assert a != random_order(10, np.random.default_rng(5))
    assert all(isinstance(i, int) for i in a)


# --------------------------------------------------------------------------------------------
# DISCA
# --------------------------------------------------------------------------------------------


def test_disca_loss_matches_hand_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5))
    p0 = rng.dirichlet(np.ones(3), size=(4, 5)).transpose(2, 0, 1)
    clicks = [Click(0, 1, 2), Click(3, 4, 0), Click(2, 2, 1)]
    lam = 0.7
    soft = np.exp(logits) / np.exp(logits).sum(0)
    ce = -np.mean([np.log(soft[c.cls, c.row, c.col]) for c in clicks])
    expected = ce + lam * np.abs(soft - p0).sum(0).mean()  # per-pixel mean of the class-summed L1
    got = disca_loss(torch.tensor(logits), clicks, torch.tensor(p0), lam)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    assert disca_loss(torch.tensor(logits), clicks, torch.tensor(p0), 0.0).item() == pytest.approx(ce, rel=1e-10)


def _window_input(model, sample):
    image, label = sample
    patch_img, patch_lab = image[:64, :64], label[:64, :64]
    with torch.no_grad():
        x0 = network_input(patch_img, None, N)
        p0 = torch.softmax(forward_window(model, x0)[0], 0)
    pred = p0.argmax(0).numpy()
    clicks, made = [], None
    for _ in range(3):
        made = largest_mistake_click(patch_lab, pred, clicks)
        if made is None:
            break
        clicks.append(made)
    if not clicks:  # the model happens to be right everywhere: click anything
        clicks = [Click(10, 10, int(patch_lab[10, 10]))]
    x = network_input(patch_img, encode_clicks(clicks, (64, 64), N, "dt", 5.0), N)
    return x, clicks, p0


def _click_ce(model, x, clicks) -> float:
    with torch.no_grad():
        logits, _ = forward_window(model, x)
    return float(disca_loss(logits, clicks, torch.softmax(logits, 0), 0.0))


def test_disca_adapt_changes_weights_and_lowers_click_loss(model, sample):
    net = copy.deepcopy(model)
    x, clicks, p0 = _window_input(net, sample)
    before_state, before_ce = _state(net), _click_ce(net, x, clicks)
    cfg = DiscaConfig(lr=0.01, steps=5, regularisation=1.0, ac_drop_probability=0.0)
    last = disca_adapt(net, x, clicks, p0, cfg, np.random.default_rng(0))
    assert math.isfinite(last) and last > 0
    assert not _same_state(_state(net), before_state)
    assert _click_ce(net, x, clicks) < before_ce
    # batch-norm statistics are frozen during adaptation
    for name, tensor in net.state_dict().items():
        if "running_" in name:
            assert torch.equal(tensor, before_state[name]), name


def test_disca_adapt_without_steps_or_clicks_changes_nothing(model, sample):
    net = copy.deepcopy(model)
    x, clicks, p0 = _window_input(net, sample)
    before = _state(net)
    rng = np.random.default_rng(0)
    assert disca_adapt(net, x, clicks, p0, DiscaConfig(0.01, 0, 1.0, 0.0), rng) == 0.0
    assert disca_adapt(net, x, [], p0, DiscaConfig(0.01, 5, 1.0, 0.0), rng) == 0.0
    outside = [Click(64, 0, 0), Click(-1, 3, 1), Click(5, 70, 2)]
    assert disca_adapt(net, x, outside, p0, DiscaConfig(0.01, 5, 1.0, 0.0), rng) == 0.0
    assert _same_state(_state(net), before)


# --------------------------------------------------------------------------------------------
# click protocol
# --------------------------------------------------------------------------------------------


def test_click_protocol_ac(model, sample):
    image, label = sample
    before = _state(model)
    rows = click_protocol(model, image, label, CLASS_NAMES, 3, _cfg("ac"), np.random.default_rng(0))
    assert len(rows) == 4
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert 0.0 <= r["miou"] <= 1.0 and 0.0 <= r["accuracy"] <= 1.0
        assert {f"iou_{n}" for n in CLASS_NAMES} <= set(r)
        assert r["corrected_pixels"] == r["correct_pixels"] - rows[0]["correct_pixels"]
    assert rows[0]["click_row"] == rows[0]["click_col"] == rows[0]["click_class"] == -1
    assert rows[0]["corrected_pixels"] == 0

    # step 0 scores the prediction without clicks; the first click is the agent's on it
    probs0, _ = predict_probs(model, image, None, WINDOW, OVERLAP)
    scores0 = segmentation_scores(label, probs0.argmax(0), N)
    assert rows[0]["miou"] == pytest.approx(scores0["miou"])
    for name, value in zip(CLASS_NAMES, scores0["iou"]):
        assert rows[0][f"iou_{name}"] == pytest.approx(value, nan_ok=True)
    first = largest_mistake_click(label, probs0.argmax(0))
    assert first is not None
    assert (rows[1]["click_row"], rows[1]["click_col"], rows[1]["click_class"]) == (first.row, first.col, first.cls)

    clicks = [Click(r["click_row"], r["click_col"], r["click_class"]) for r in rows[1:] if r["click_row"] >= 0]
    assert len(clicks) == 3
    assert len({(c.row, c.col) for c in clicks}) == len(clicks)
    assert all(label[c.row, c.col] == c.cls for c in clicks)
    # the last row scores the AC prediction with all clicks in the annotation channels
    channels = encode_clicks(clicks, label.shape, N, "dt", 5.0)
    probs, _ = predict_probs(model, image, channels, WINDOW, OVERLAP)
    assert rows[-1]["miou"] == pytest.approx(segmentation_scores(label, probs.argmax(0), N)["miou"])
    assert _same_state(_state(model), before)


def test_click_protocol_disca_copies_the_model(model, sample):
    image, label = sample
    before = _state(model)
    rows = click_protocol(model, image, label, CLASS_NAMES, 2, _cfg("disca", steps=2, lr=0.05),
                          np.random.default_rng(0))
    assert len(rows) == 3 and [r["step"] for r in rows] == [0, 1, 2]
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
    assert rows[1]["click_row"] >= 0
    assert _same_state(_state(model), before)  # the caller's weights are untouched
    assert all(p.requires_grad for p in model.parameters())


def test_click_protocol_without_mistakes_records_no_click(model, sample):
    image, _ = sample
    probs0, _ = predict_probs(model, image, None, WINDOW, OVERLAP)
    perfect = probs0.argmax(0).astype(np.uint8)  # GT equal to the prediction: nothing to click
    rows = click_protocol(model, image, perfect, CLASS_NAMES, 2, _cfg("ac"), np.random.default_rng(0))
    assert len(rows) == 3
    assert all(r["click_row"] == -1 for r in rows)
    assert all(r["accuracy"] == 1.0 and r["corrected_pixels"] == 0 for r in rows)


# --------------------------------------------------------------------------------------------
# patch protocol
# --------------------------------------------------------------------------------------------

PATCH = 32


def _expected_order(scores: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def test_patch_protocol_rows_and_budget(model, sample):
    image, label = sample
    n_windows = len(tile_windows(*label.shape, PATCH, 0))
    assert n_windows == 9
    rows = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "entropy", _cfg("ac"),
                          np.random.default_rng(0), max_patches=5)
    assert len(rows) == 6
    assert rows[0]["patch"] == -1 and rows[0]["step"] == 0
    assert [r["step"] for r in rows] == list(range(6))
    every = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "entropy", _cfg("ac"),
                           np.random.default_rng(0), max_patches=None)
    assert len(every) == n_windows + 1
    assert sorted(r["patch"] for r in every[1:]) == list(range(n_windows))
    big = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "random", _cfg("ac"),
                         np.random.default_rng(0), max_patches=50)
    assert len(big) == n_windows + 1
    assert sorted(r["patch"] for r in big[1:]) == list(range(n_windows))


def test_patch_protocol_clicks_land_in_their_patch(model, sample):
    image, label = sample
    windows = tile_windows(*label.shape, PATCH, 0)
    rows = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "entropy", _cfg("ac"),
                          np.random.default_rng(0))
    assert sum(r["click_row"] >= 0 for r in rows[1:]) > 0
    for r in rows[1:]:
        if r["click_row"] < 0:
            continue
        wr, wc, h, w = windows[r["patch"]]
        assert wr <= r["click_row"] < wr + h and wc <= r["click_col"] < wc + w
        assert label[r["click_row"], r["click_col"]] == r["click_class"]
        assert 0.0 <= r["miou"] <= 1.0


def test_patch_protocol_entropy_order(model, sample):
    image, label = sample
    probs0, _ = predict_probs(model, image, None, WINDOW, OVERLAP)
    scores = patch_scores(entropy_map(probs0), tile_windows(*label.shape, PATCH, 0))
    assert len(set(np.round(scores, 9))) == len(scores)  # no ties: the order is well defined
    rows = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "entropy", _cfg("ac"),
                          np.random.default_rng(0), max_patches=6)
    visited = [r["patch"] for r in rows[1:]]
    assert visited == _expected_order(scores)[:6]
    assert all(np.diff(scores[visited]) < 0)


def test_patch_protocol_confidnet_order(model, sample):
    image, label = sample
    torch.manual_seed(0)
    head = ConfidNet(model.feature_channels).eval()
    _, uncertainty = predict_with_uncertainty(model, image, None, "confidnet", WINDOW, OVERLAP, confidnet=head)
    assert uncertainty.shape == label.shape
    scores = patch_scores(uncertainty, tile_windows(*label.shape, PATCH, 0))
    rows = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "confidnet", _cfg("ac"),
                          np.random.default_rng(0), confidnet=head, max_patches=4)
    assert [r["patch"] for r in rows[1:]] == _expected_order(scores)[:4]


def test_patch_protocol_confidnet_needs_head(model, sample):
    image, label = sample
    with pytest.raises(ValueError, match="ConfidNet"):
        patch_protocol(model, image, label, CLASS_NAMES, PATCH, "confidnet", _cfg("ac"), np.random.default_rng(0))


def test_patch_protocol_unknown_acquisition(model, sample):
    image, label = sample
    with pytest.raises(ConfigError, match="unknown acquisition 'curiosity'.*bald"):
        patch_protocol(model, image, label, CLASS_NAMES, PATCH, "curiosity", _cfg("ac"), np.random.default_rng(0))


def test_patch_protocol_random_order_is_reproducible(model, sample):
    image, label = sample

    def visit(seed: int) -> list[int]:
        rows = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "random", _cfg("ac"),
                              np.random.default_rng(seed), max_patches=9)
        return [r["patch"] for r in rows[1:]]

    a = visit(11)
    assert a == visit(11)
    assert a == random_order(9, np.random.default_rng(11))
    assert a != visit(12)


def test_patch_protocol_disca_copies_model_and_visits_each_patch_once(model, sample):
    image, label = sample
    before = _state(model)
    rows = patch_protocol(model, image, label, CLASS_NAMES, PATCH, "entropy", _cfg("disca", steps=2, lr=0.05),
                          np.random.default_rng(0), max_patches=3)
    assert len(rows) == 4
    visited = [r["patch"] for r in rows[1:]]
    assert len(set(visited)) == 3 and all(0 <= p < 9 for p in visited)
    assert _same_state(_state(model), before)
