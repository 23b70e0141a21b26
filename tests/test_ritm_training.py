"""RITM iterative training: initial points, iterative clicks with the previous mask fed back,
the not-interactive variant, optimiser groups, a few training steps and determinism."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from dial_core.clicks.agents.base import depth_map
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError
from dial_core.models.ritm import RITMNet, click_maps
from dial_core.training.crops import CropSource
from dial_core.training.ritm_training import (
    RitmCropDataset,
    RitmTrainConfig,
    collate,
    decaying_probs,
    initial_clicks,
    iterative_clicks,
    ritm_optimiser,
    train_ritm,
    training_maps,
)

torch.set_num_threads(1)

ENCODER, ARCH = "tu-mobilenetv3_small_050", "linknet"  # tiny: ~0.5 M parameters


def _label() -> np.ndarray:
    label = np.zeros((48, 48), np.uint8)
    label[10:30, 10:30] = 1
    label[40:, :] = 255
    return label


# --------------------------------------------------------------------------------------------
# initial points
# --------------------------------------------------------------------------------------------
def test_decaying_counts_follow_ritm_generate_probs():
    np.testing.assert_allclose(decaying_probs(3, 0.8), np.array([1, 0.8, 0.64]) / 2.44)


def test_initial_points_positives_inside_away_from_border_negatives_on_background():
    label = _label()
    cfg = RitmTrainConfig(positive_erode_prob=1.0)
    depth = depth_map(label == 1)
    n_pos, n_neg = [], []
    for seed in range(60):
        clicks = initial_clicks(label, np.random.default_rng(seed), cfg)
        pos = [c for c in clicks if c.cls == 1]
        neg = [c for c in clicks if c.cls == 0]
        assert all(label[c.row, c.col] == 1 and depth[c.row, c.col] > cfg.positive_erode for c in pos)
        assert all(label[c.row, c.col] == 0 for c in neg)
        assert 1 <= len(pos) <= cfg.max_initial_points and len(neg) <= cfg.max_initial_points
        assert len(set(clicks)) == len(clicks)
        n_pos.append(len(pos))
        n_neg.append(len(neg))
    assert min(n_neg) == 0 and max(n_pos) > 1  # counts vary, few points common
    assert initial_clicks(label, np.random.default_rng(7), cfg) == initial_clicks(label, np.random.default_rng(7), cfg)


def test_near_negatives_lie_in_the_band_and_empty_crops_get_no_positive():
    label = _label()
    cfg = RitmTrainConfig(near_negative_prob=1.0)
    reach = math.ceil(0.1 * math.sqrt(400))  # 2 pixels around the 20×20 object
    dist = ndimage.distance_transform_cdt(label != 1, metric="chessboard")
    for seed in range(20):
        neg = [c for c in initial_clicks(label, np.random.default_rng(seed), cfg) if c.cls == 0]
        assert all(label[c.row, c.col] == 0 and dist[c.row, c.col] <= reach for c in neg)
    empty = np.where(label == 1, 0, label).astype(np.uint8)
    for seed in range(20):
        clicks = initial_clicks(empty, np.random.default_rng(seed), cfg)
        assert all(c.cls == 0 and empty[c.row, c.col] == 0 for c in clicks)


def test_non_binary_crops_are_refused():
    label = np.full((64, 64), 2, np.uint8)
    source = CropSource.from_arrays([np.zeros((64, 64, 3), np.uint8)], [label])
    with pytest.raises(ConfigError, match="label_view: buildings"):
        RitmCropDataset(source, RitmTrainConfig(crop_size=64, crops_per_epoch=1), 0, 0)[0]


# --------------------------------------------------------------------------------------------
# iterative clicks with a scripted network
# --------------------------------------------------------------------------------------------
class Scripted(nn.Module):
    """Returns the given logits, one per call, and records the maps and mode of each call."""

    def __init__(self, outputs: list[torch.Tensor]):
        super().__init__()
        self.outputs, self.seen, self.modes = outputs, [], []
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image, maps):
        self.seen.append(maps.clone())
        self.modes.append(self.training)
        out = self.outputs[len(self.seen) - 1]
        return out, out


JUST_ABOVE = math.log(0.495 / 0.505)  # sigmoid = 0.495: predicted 1 at RITM's 0.49 threshold


def _scene():
    labels = torch.zeros(2, 24, 24, dtype=torch.long)
    labels[0, 4:14, 4:14] = 1
    labels[1, 16:22, 16:22] = 1
    labels[1, 0, :] = 255
    first = torch.full((2, 1, 24, 24), -5.0)  # sample 0 predicts nothing: a large FN
    first[1, 0, 2:10, 14:22] = JUST_ABOVE  # sample 1: an 8×8 FP, object right
    first[1, 0, 16:22, 16:22] = 5.0
    second = torch.full((2, 1, 24, 24), -5.0)
    second[0, 0, 4:14, 4:14] = 5.0  # object right, an 8×10 FP on the left border
    second[0, 0, 15:23, 0:10] = 5.0
    second[1, 0, 16:22, 16:22] = 5.0  # sample 1 all right: no click
    return torch.rand(2, 3, 24, 24), labels, first, second


def test_iterative_clicks_feed_back_the_previous_mask_and_click_the_deepest_error():
    images, labels, first, second = _scene()
    model = Scripted([first, second]).train()
    initial = [[Click(8, 8, 1)], []]
    maps, clicks = iterative_clicks(model, images, labels, initial, n_iters=2)
    # square rows/cols 4..13: depth 5 at (8..9, 8..9); (8, 8) is clicked already -> (8, 9), positive
    # sample 1: FP rows 2..9 x cols 14..21 -> depth 4 first at (5, 17), negative
    # round 2, sample 0: FP rows 15..22 x cols 0..9 (left border a boundary) -> depth 4 first at (18, 3)
    assert clicks == [[Click(8, 8, 1), Click(8, 9, 1), Click(18, 3, 0)], [Click(5, 17, 0)]]
    assert model.modes == [False, False] and model.training  # eval passes, train mode restored
    assert not model.seen[0][:, 2].any()  # first pass: all-zero previous mask
    expected_first = (torch.sigmoid(first) > 0.49).float()[:, 0]
    assert torch.equal(model.seen[1][:, 2], expected_first)
    assert expected_first[1, 5, 17] == 1  # 0.495 counts as predicted
    assert torch.equal(maps[:, 2], (torch.sigmoid(second) > 0.49).float()[:, 0])  # last pass's mask
    for b in range(2):
        disks = click_maps([(c.row, c.col, c.cls == 1) for c in clicks[b]], (24, 24), 5.0)
        assert torch.equal(maps[b, :2], torch.from_numpy(disks))
    assert initial == [[Click(8, 8, 1)], []]  # the caller's lists are not changed


def test_soft_previous_mask_and_inner_clicks_are_ritm_trainer_options():
    images, labels, first, _ = _scene()
    rngs = [np.random.default_rng(1), np.random.default_rng(2)]
    maps, clicks = iterative_clicks(Scripted([first]), images, labels, [[], []], 1, binary_prev_mask=False,
                                    next_click="inner", rngs=rngs)
    assert torch.allclose(maps[:, 2], torch.sigmoid(first)[:, 0])
    (c0,), (c1,) = clicks
    assert c0.cls == 1 and labels[0, c0.row, c0.col] == 1
    fp = depth_map((torch.sigmoid(first[1, 0]) > 0.49).numpy() & (labels[1] == 0).numpy())
    assert c1.cls == 0 and fp[c1.row, c1.col] > fp.max() / 2


def test_zero_iterations_keep_initial_disks_and_an_empty_previous_mask():
    images, labels, *_ = _scene()
    model = Scripted([])
    initial = [[Click(8, 8, 1), Click(20, 2, 0)], []]
    maps, clicks = iterative_clicks(model, images, labels, initial, n_iters=0)
    assert clicks == initial and model.seen == []
    assert torch.equal(maps[0, :2], torch.from_numpy(click_maps([(8, 8, True), (20, 2, False)], (24, 24))))
    assert not maps[1].any() and not maps[:, 2].any()


# --------------------------------------------------------------------------------------------
# batches and training
# --------------------------------------------------------------------------------------------
def _squares(n: int = 3, size: int = 96) -> CropSource:
    rng = np.random.default_rng(0)
    images, labels = [], []
    for _ in range(n):
        label = np.zeros((size, size), np.uint8)
        for _ in range(4):
            s = int(rng.integers(12, 24))
            r, c = rng.integers(0, size - s, size=2)
            label[r : r + s, c : c + s] = 1
        image = rng.normal(70, 12, (size, size, 3)) + 130 * label[..., None]
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        labels.append(label)
    return CropSource.from_arrays(images, labels)


def _model() -> RITMNet:
    torch.manual_seed(0)
    return RITMNet(encoder=ENCODER, arch=ARCH)


def _cfg(**kw) -> RitmTrainConfig:
    base = {"epochs": 2, "crops_per_epoch": 4, "crop_size": 64, "batch_size": 2, "max_initial_points": 4}
    return RitmTrainConfig(**{**base, **kw})


def test_not_interactive_maps_are_all_zero():
    cfg = _cfg(interactive=False)
    images, labels, clicks, indices = collate([RitmCropDataset(_squares(), cfg, 0, 0)[i] for i in range(2)])
    assert clicks == [[], []]
    maps, n_iters = training_maps(Scripted([]), images, labels, clicks, indices, cfg, 0, 0)
    assert n_iters == 0 and maps.shape == (2, 3, 64, 64) and not maps.any()


def test_backbone_group_has_a_tenth_of_the_learning_rate():
    model, cfg = _model(), _cfg()
    groups = ritm_optimiser(model, cfg).param_groups
    assert groups[0]["lr"] == pytest.approx(cfg.lr * 0.1) and groups[1]["lr"] == cfg.lr
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.net.encoder.parameters()}
    assert {id(p) for p in model.maps_transform.parameters()} <= {id(p) for p in groups[1]["params"]}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))


def test_training_lowers_the_loss_and_moves_backbone_and_maps_transform():
    model = _model()
    stem = next(model.net.encoder.parameters()).detach().clone()
    fusion = model.maps_transform[0].weight.detach().clone()
    model, history = train_ritm(model, _squares(), _cfg(epochs=6), torch.device("cpu"), seed=3, log=lambda _m: None)
    losses = [row["loss"] for row in history]  # RITM's lr 5e-4: about 0.78 -> 0.66
    assert losses[-1] < 0.95 * losses[0]
    assert any(row["iterative_clicks"] > 0 for row in history)  # iterative rounds were trained on
    assert not torch.equal(next(model.net.encoder.parameters()), stem)
    assert not torch.equal(model.maps_transform[0].weight, fusion)
    assert not model.training


def test_same_seed_same_history_and_init_state_is_the_starting_point():
    source, cfg = _squares(), _cfg()
    # the second run draws its crops and initial points in 2 data-loader processes (what a GPU run does)
    runs = [train_ritm(_model(), source, dataclasses.replace(cfg, workers=workers), torch.device("cpu"), seed=5,
                       log=lambda _m: None) for workers in (0, 2)]
    assert runs[0][1] == runs[1][1]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0].state_dict().values(), runs[1][0].state_dict().values()))
    other = _model()
    state = runs[0][0].state_dict()
    tuned, history = train_ritm(other, source, _cfg(epochs=0), torch.device("cpu"), seed=5, init_state=state)
    assert history == [] and all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), state.values()))
