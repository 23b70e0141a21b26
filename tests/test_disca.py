"""DISCA as the papers run it: every window holding a click, frozen batch norm, Eq. 1 with a λ that
matters, the p0 choices, the annotation-channel drop, and the learning-rate calibration."""

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import briefly_pretrained, toy_scene

import dial_core.interactive.disca as disca_module
import dial_core.evaluation.protocols as protocols
import dial_core.steps as steps
from dial_core.clicks.encoding import encode_clicks
from dial_core.clicks.types import Click
from dial_core.data.splits import hold_out_calibration
from dial_core.errors import ConfigError, DataError
from dial_core.evaluation.protocols import InteractionConfig, click_protocol, disca_windows
from dial_core.interactive.disca import DiscaConfig, disca_adapt, disca_loss, l1_term
from dial_core.interactive.inference import forward_window
from dial_core.models.segmenter import network_input

torch.set_num_threads(2)

CLASS_NAMES = ["road", "roof", "tree"]
N = len(CLASS_NAMES)


@pytest.fixture(scope="module")
def model():
    """LinkNet-ResNet18 after one short epoch: imperfect, so there are mistakes to click."""
    rng = np.random.default_rng(0)
    return briefly_pretrained([toy_scene(rng) for _ in range(3)], N)


@pytest.fixture(scope="module")
def sample():
    return toy_scene(np.random.default_rng(100))


def _window(sample, clicks=(Click(5, 5, 0), Click(40, 50, 1), Click(60, 20, 2))):
    image, _ = sample
    clicks = list(clicks)
    x = network_input(image[:64, :64], encode_clicks(clicks, (64, 64), N, "dt", 5.0), N)
    return x, clicks


def _state(net) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _is_bn(name: str, net) -> bool:
    module = net.get_submodule(name.rsplit(".", 1)[0])
    return isinstance(module, torch.nn.modules.batchnorm._BatchNorm)


def _cfg(lr=0.05, steps=2, drop=0.0, p0="initial", window=32, lam=1.0) -> InteractionConfig:
    return InteractionConfig(method="disca", agent="largest_mistake_centre",
                             disca=DiscaConfig(lr, steps, lam, drop, p0), window=64, overlap=16, disca_window=window)


# ------------------------------------------------------------------------------------------------
# every window holding a click, every round
# ------------------------------------------------------------------------------------------------


def test_disca_windows_are_the_grid_windows_holding_a_click():
    clicks = [Click(1, 1, 0), Click(70, 40, 1), Click(2, 3, 2)]
    assert disca_windows((96, 96), clicks, 32) == [(0, 0, 32, 32), (64, 32, 32, 32)]
    assert disca_windows((96, 96), [], 32) == []
    assert disca_windows((96, 96), clicks, 512) == [(0, 0, 96, 96)]  # larger than the image: one window
    # the last row / column is flush with the border and still holds the border clicks
    assert disca_windows((100, 100), [Click(99, 99, 0)], 32)[-1] == (68, 68, 32, 32)


def test_click_protocol_adapts_every_window_holding_a_click_every_round(model, sample, monkeypatch):
    image, label = sample
    calls: list[tuple[int, tuple[int, int], int]] = []
    steps_taken = []
    real_adapt, real_forward = protocols.disca_adapt, disca_module.forward_window

    def spy_adapt(net, x, clicks, p0, cfg, rng):
        calls.append((len(clicks), tuple(x.shape[1:]), cfg.steps))
        return real_adapt(net, x, clicks, p0, cfg, rng)

    def spy_forward(net, x, with_features=False):
        steps_taken.append(1)
        return real_forward(net, x, with_features)

    monkeypatch.setattr(protocols, "disca_adapt", spy_adapt)
    monkeypatch.setattr(disca_module, "forward_window", spy_forward)
    rows = click_protocol(model, image, label, CLASS_NAMES, 4, _cfg(steps=3, window=32), np.random.default_rng(0))
    clicks = [Click(r["click_row"], r["click_col"], r["click_class"]) for r in rows[1:] if r["click_row"] >= 0]
    assert len(clicks) >= 3
    expected = sum(len(disca_windows(label.shape, clicks[:k], 32)) for k in range(1, len(clicks) + 1))
    assert len(calls) == expected > len(clicks)  # more than the latest click's window alone
    assert sum(n for n, _, _ in calls) == sum(  # every click inside its window, every round
        sum(any(r <= c.row < r + h and q <= c.col < q + w for c in [k]) for k in clicks[:j] for r, q, h, w in disca_windows(label.shape, clicks[:j], 32))
        for j in range(1, len(clicks) + 1))
    assert all(shape == (32, 32) and s == 3 for _, shape, s in calls)
    assert len(steps_taken) == 3 * expected  # steps per window (p0 initial: no extra forward)


# ------------------------------------------------------------------------------------------------
# batch norm frozen: statistics and affine parameters
# ------------------------------------------------------------------------------------------------


def test_batchnorm_statistics_and_affine_parameters_stay_unchanged(model, sample):
    net = copy.deepcopy(model)
    net.train()  # adaptation must not depend on the mode it was handed
    x, clicks = _window(sample)
    before = _state(net)
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    disca_adapt(net, x, clicks, None, DiscaConfig(0.1, 4, 1.0, 0.5), np.random.default_rng(0))
    after = _state(net)
    bn = [k for k in before if _is_bn(k, net)]
    assert any(k.endswith("running_mean") for k in bn) and any(k.endswith(".weight") for k in bn)
    for k in bn:
        assert torch.equal(before[k], after[k]), k
    moved = [k for k in before if not _is_bn(k, net) and not torch.equal(before[k], after[k])]
    assert moved  # the other weights did move
    assert {n: p.requires_grad for n, p in net.named_parameters()} == flags  # restored
    assert net.training  # mode restored


# ------------------------------------------------------------------------------------------------
# Eq. 1: λ matters
# ------------------------------------------------------------------------------------------------


def test_l1_is_the_per_pixel_mean_of_the_class_summed_distance():
    a = torch.zeros(3, 4, 5)
    a[0] = 1.0
    b = torch.zeros(3, 4, 5)
    b[1] = 1.0
    assert float(l1_term(a, b)) == pytest.approx(2.0)  # two disjoint one-hot maps: the maximum
    b[:, :2] = a[:, :2]
    assert float(l1_term(a, b)) == pytest.approx(1.0)  # half the pixels agree
    assert float(l1_term(a, a)) == 0.0


def test_lambda_changes_the_loss_and_the_adapted_weights(model, sample):
    x, clicks = _window(sample)
    with torch.no_grad():
        logits, _ = forward_window(model, x)
    p0 = torch.softmax(logits, 0).roll(1, dims=0)  # a reference the prediction is far from
    one, ten = disca_loss(logits, clicks, p0, 1.0), disca_loss(logits, clicks, p0, 10.0)
    ce = disca_loss(logits, clicks, p0, 0.0)
    assert float(ten - ce) == pytest.approx(10 * float(one - ce), rel=1e-5)
    assert float(one - ce) > 0.05 * float(ce)  # the regulariser is not a rounding error of the CE

    with torch.no_grad():  # the papers' p0: the prediction before adaptation, annotation channels dropped
        x_off = x.clone()
        x_off[3:] = 0
        p_initial = torch.softmax(forward_window(model, x_off)[0], 0)
    states, losses = [], []
    for lam in (1.0, 10.0):
        net = copy.deepcopy(model)
        losses.append(disca_adapt(net, x, clicks, p_initial, DiscaConfig(0.05, 4, lam, 1.0), np.random.default_rng(0)))
        states.append(_state(net))
    assert losses[0] != pytest.approx(losses[1])
    moved = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    assert moved, "λ = 1 and λ = 10 adapted to the same weights"
    delta = max(float((states[0][k] - states[1][k]).abs().max()) for k in moved)
    assert delta > 1e-6


# ------------------------------------------------------------------------------------------------
# p0 choices
# ------------------------------------------------------------------------------------------------


def test_p0_initial_is_the_prediction_before_adaptation_and_current_the_prediction_with_clicks(model, sample, monkeypatch):
    image, label = sample
    seen = []
    real_adapt = protocols.disca_adapt

    def spy(net, x, clicks, p0, cfg, rng):
        seen.append(None if p0 is None else p0.clone())
        return real_adapt(net, x, clicks, p0, cfg, rng)

    monkeypatch.setattr(protocols, "disca_adapt", spy)
    from dial_core.interactive.inference import predict_probs

    probs0, _ = predict_probs(model, image, None, 64, 16)
    click_protocol(model, image, label, CLASS_NAMES, 2, _cfg(p0="initial", window=96), np.random.default_rng(0))
    assert seen and all(torch.allclose(p, torch.from_numpy(probs0)) for p in seen)  # the same p0 every round
    seen.clear()
    click_protocol(model, image, label, CLASS_NAMES, 2, _cfg(p0="current", window=96), np.random.default_rng(0))
    assert seen and all(p is None for p in seen)  # computed by disca_adapt from the current weights, with AC

    # p0=None is the current network's prediction of the window *with* its annotation channels
    x, clicks = _window(sample)
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        current = torch.softmax(forward_window(model, x)[0], 0)
        x_off = x.clone()
        x_off[3:] = 0
        initial = torch.softmax(forward_window(model, x_off)[0], 0)
    assert not torch.allclose(current, initial)
    disca_adapt(a, x, clicks, None, DiscaConfig(0.05, 3, 5.0, 1.0, "current"), np.random.default_rng(0))
    disca_adapt(b, x, clicks, current, DiscaConfig(0.05, 3, 5.0, 1.0, "current"), np.random.default_rng(0))
    sa, sb = _state(a), _state(b)
    assert all(torch.allclose(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="p0"):
        DiscaConfig(0.1, 1, 1.0, 0.0, "latest")


# ------------------------------------------------------------------------------------------------
# annotation-channel drop
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("drop, zeroed", [(1.0, True), (0.0, False)])
def test_drop_probability_one_always_zeroes_the_annotation_channels(model, sample, monkeypatch, drop, zeroed):
    x, clicks = _window(sample)
    assert float(x[3:].abs().sum()) > 0
    inputs = []
    real_forward = disca_module.forward_window

    def spy(net, t, with_features=False):
        inputs.append(t.detach().clone())
        return real_forward(net, t, with_features)

    monkeypatch.setattr(disca_module, "forward_window", spy)
    disca_adapt(copy.deepcopy(model), x, clicks, None, DiscaConfig(0.01, 6, 1.0, drop), np.random.default_rng(0))
    p0_pass, step_inputs = inputs[0], inputs[1:]
    assert torch.equal(p0_pass, x)  # p0: current sees the clicks
    assert len(step_inputs) == 6
    for t in step_inputs:
        assert torch.equal(t[:3], x[:3])
        assert bool((t[3:] == 0).all()) is zeroed


def test_drop_probability_is_set_per_protocol():
    d = {"lr": 1e-3, "steps": 2, "regularisation": 1.0, "p0": "current",
         "ac_drop_probability": {"clicks": 0.2, "patches": 0.5}, "window": 64}
    assert steps.disca_config(d, "clicks").ac_drop_probability == 0.2
    assert steps.disca_config(d, "patches").ac_drop_probability == 0.5
    assert steps.disca_config({**d, "ac_drop_probability": 1.0}, "patches").ac_drop_probability == 1.0
    assert steps.disca_config(d).p0 == "current"


# ------------------------------------------------------------------------------------------------
# learning-rate calibration
# ------------------------------------------------------------------------------------------------


def _evaluation(lr="calibrated"):
    return {"agent": "largest_mistake_centre", "max_images": None,
            "clicks": {"n_clicks": 2, "methods": ["ac", "disca"]},
            "patches": {"size": 32, "max_patches": 2, "methods": ["ac", "disca"], "acquisitions": ["random"]},
            "disca": {"lr": lr, "steps": 1, "regularisation": 1.0, "p0": "initial",
                      "ac_drop_probability": {"clicks": 0.2, "patches": 0.5}, "window": 64,
                      "calibration": {"grid": [1e-4, 1e-2], "clicks": 2, "agent": None}}}


def test_calibration_reads_only_held_out_training_images_and_picks_from_the_grid(model, tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    scenes = {f"i{k}": toy_scene(rng) for k in range(8)}
    split = hold_out_calibration({"train": ["i0", "i1", "i2", "i3", "i4"], "val": ["i5", "i6", "i7"]}, 2, seed=0)
    assert len(split["calibration"]) == 2 and len(split["train"]) == 3  # held out of training
    read = []

    def read_image(root, image_id):
        read.append(image_id)
        return scenes[image_id][0]

    def read_label(root, image_id):
        read.append(image_id)
        return scenes[image_id][1]

    monkeypatch.setattr(steps, "read_image", read_image)
    monkeypatch.setattr(steps, "read_label", read_label)
    monkeypatch.setattr(steps, "raster_shape", lambda root, image_id: (read.append(image_id), scenes[image_id][1].shape)[1])
    info = SimpleNamespace(name="toy", class_names=CLASS_NAMES)
    result = steps.calibrate_disca(tmp_path, info, split, model, _evaluation(), {"size": 64, "overlap": 16}, 0, "linknet")
    assert read and set(read) == set(split["calibration"])  # neither training nor validation images
    assert set(result["images"]) == set(read) and len(result["images"]) == 2
    assert result["lr"] in (1e-4, 1e-2)
    assert [r["lr"] for r in result["results"]] == [None, 1e-4, 1e-2]  # AC reference, then the grid
    best = max(r["mean_gain"] for r in result["results"][1:])
    assert [r for r in result["results"] if r["lr"] == result["lr"]][0]["mean_gain"] == best


def test_transfer_calibration_tops_up_with_the_targets_training_images_never_validation(model, tmp_path, monkeypatch):
    """A network trained on another dataset has seen none of the target's images: its calibration
    takes the target's calibration images, then training images up to transfer_images."""
    rng = np.random.default_rng(4)
    scenes = {f"i{k}": toy_scene(rng) for k in range(8)}
    split = {"train": ["i0", "i1", "i2", "i3"], "val": ["i5", "i6", "i7"], "calibration": ["i4"]}
    read = set()
    monkeypatch.setattr(steps, "read_image", lambda root, i: (read.add(i), scenes[i][0])[1])
    monkeypatch.setattr(steps, "read_label", lambda root, i: (read.add(i), scenes[i][1])[1])
    monkeypatch.setattr(steps, "raster_shape", lambda root, i: (read.add(i), scenes[i][1].shape)[1])
    info = SimpleNamespace(name="target", class_names=CLASS_NAMES)
    evaluation = _evaluation()
    evaluation["disca"]["calibration"] = {**evaluation["disca"]["calibration"], "grid": [1e-4], "transfer_images": 3}
    transfer = steps.calibrate_disca(tmp_path, info, split, model, evaluation, {"size": 64, "overlap": 16}, 0, "linknet",
                                     trained_on="source")
    assert transfer["images"] == ["i4", "i0", "i1"] and read == {"i4", "i0", "i1"}
    in_domain = steps.calibrate_disca(tmp_path, info, split, model, evaluation, {"size": 64, "overlap": 16}, 0, "linknet",
                                      trained_on="target")
    assert in_domain["images"] == ["i4"]  # the network trained on the other training images


def test_calibration_hold_out_is_seeded_and_leaves_training_images():
    split = {"train": [f"t{k}" for k in range(6)], "val": ["v0"]}
    a, b = hold_out_calibration(split, 2, seed=0), hold_out_calibration(split, 2, seed=0)
    assert a == b and len(a["calibration"]) == 2
    assert sorted(a["train"] + a["calibration"]) == split["train"] and a["val"] == ["v0"]
    assert len(hold_out_calibration(split, 10, seed=0)["train"]) == 1  # at least one training image stays
    assert hold_out_calibration(split, 0, seed=0) == {**split, "calibration": []}
    with pytest.raises(ConfigError, match="split.calibration_images"):
        hold_out_calibration(split, -1, seed=0)


def test_calibration_without_held_out_images_names_the_parameter(model, tmp_path):
    info = SimpleNamespace(name="toy", class_names=CLASS_NAMES)
    with pytest.raises(DataError, match="split.calibration_images"):
        steps.calibrate_disca(tmp_path, info, {"train": ["a"], "val": ["b"]}, model, _evaluation(), {"size": 64, "overlap": 16}, 0, "linknet")


def test_evaluation_uses_the_calibrated_lr(tmp_path):
    path = tmp_path / "linknet.json"
    path.write_text(json.dumps({"lr": 3.5e-4, "results": []}))
    evaluation = steps.with_disca_lr(_evaluation(), path)
    assert steps.adaptation_settings(evaluation, "disca")["lr"] == 3.5e-4  # set as evaluation.arms.disca.lr
    cfg = steps.interaction_config("disca", evaluation, {"size": 64, "overlap": 16})
    assert cfg.disca.lr == 3.5e-4 and cfg.disca.ac_drop_probability == 0.2
    fixed = _evaluation(lr=2e-6)
    assert steps.with_disca_lr(fixed, path) is fixed  # a fixed lr (the papers' values) ignores the file
    with pytest.raises(steps.ConfigError, match="calibrat"):
        steps.interaction_config("disca", _evaluation(), {"size": 64, "overlap": 16})
    assert steps.with_disca_lr(_evaluation(), None)["disca"]["lr"] == "calibrated"  # AC runs read no file
    with pytest.raises(steps.ConfigError, match="calibrate_disca"):
        steps.interaction_config("disca", steps.with_disca_lr(_evaluation(), None), {"size": 64, "overlap": 16})
    assert steps.interaction_config("ac", _evaluation(), {"size": 64, "overlap": 16}).method == "ac"  # AC needs no lr


def test_patch_protocol_lr_decays_as_dials_patch_loop(model, monkeypatch):
    d = _evaluation(lr=1e-3)["disca"]
    inverse = steps.disca_config({**d, "patch_lr_decay": "inverse"}, "patches")
    assert [inverse.at(i).lr for i in range(3)] == pytest.approx([1e-3, 5e-4, 1e-3 / 3])
    assert steps.disca_config({**d, "patch_lr_decay": "inverse"}, "clicks").at(2).lr == 1e-3  # clicks: constant
    assert steps.disca_config({**d, "patch_lr_decay": "constant"}, "patches").at(5).lr == 1e-3
    with pytest.raises(ValueError, match="lr_decay"):
        DiscaConfig(1e-3, 1, 1.0, 0.0, "initial", "linear")
    seen = []  # the patch protocol hands the i-th annotated patch's adaptation lr / (i + 1)
    monkeypatch.setattr(protocols, "_adapt", lambda model, scene, clicks, p0, windows, cfg, rng: seen.append(cfg.disca.lr))
    image, label = toy_scene(np.random.default_rng(5))
    cfg = InteractionConfig("disca", "largest_mistake_centre", inverse, window=64, overlap=16)
    protocols.patch_protocol(model, image, label, CLASS_NAMES, 32, "random", cfg, np.random.default_rng(0), max_patches=4)
    assert len(seen) >= 2 and seen == pytest.approx([1e-3 / (i + 1) for i in range(len(seen))])


def test_calibration_hold_out_takes_whole_scenes_with_a_group_pattern(caplog):
    """With split.group_pattern no training chip shares its scene with a calibration chip; the draw
    without a pattern is unchanged; one training scene falls back to images with a warning."""
    train = [f"{scene}_{k}" for scene in ("a", "b", "c", "d") for k in range(3)]
    split = {"train": train, "val": ["e_0"]}
    held = hold_out_calibration(split, 2, seed=0, group_pattern=r"^(.*)_\d+$")
    scenes = {i.split("_")[0] for i in held["calibration"]}
    assert len(scenes) == 1 and len(held["calibration"]) == 3  # one whole scene: 2 asked, 3 held
    assert not scenes & {i.split("_")[0] for i in held["train"]}
    assert sorted(held["train"] + held["calibration"]) == sorted(train)
    assert hold_out_calibration(split, 2, seed=0, group_pattern=None) == hold_out_calibration(split, 2, seed=0)
    assert len(hold_out_calibration(split, 4, seed=0, group_pattern=r"^(.*)_\d+$")["calibration"]) == 6  # two scenes
    one_scene = {"train": ["a_0", "a_1", "a_2"], "val": ["e_0"]}
    with caplog.at_level("WARNING"):
        fallback = hold_out_calibration(one_scene, 1, seed=0, group_pattern=r"^(.*)_\d+$")
    assert len(fallback["calibration"]) == 1 and "share their scene" in caplog.text
