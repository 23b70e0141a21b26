"""Pretraining studies: encodings, click positions, single-channel variants, prediction-dependent
training clicks, grid expansion and training-size subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from pathlib import Path
from scipy import ndimage

from dial_core.clicks.encoding import ClickEncoder, encode_clicks, guided_filter
from dial_core.clicks.sampling import border_candidates, sample_border_clicks, sample_training_clicks
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError
from dial_core.models.segmenter import NetworkSpec, Segmenter
from dial_core.studies import expand_networks
from dial_core.training.crops import ClickCropDataset, ClickPolicy, CropSource, annotate_with_prediction
from dial_core.training.pretrain import PretrainConfig, pretrain

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (40, 40)


def two_regions() -> np.ndarray:
    label = np.zeros(SHAPE, np.uint8)
    label[:, 20:] = 1
    return label


# ---------------------------------------------------------------- context encodings
@pytest.mark.parametrize("encoding", ["cpm", "cgt"])
def test_connected_encodings_stay_in_the_clicked_region(encoding):
    regions = two_regions()
    kwargs = {"prediction": regions} if encoding == "cpm" else {"label": regions}
    out = encode_clicks([Click(20, 17, 0)], SHAPE, 2, encoding, 10.0, **kwargs)
    dt = encode_clicks([Click(20, 17, 0)], SHAPE, 2, "dt", 10.0)
    assert out[0, 20, 17] == pytest.approx(1.0)
    assert (out[0][:, 20:] == 0).all() and (dt[0][:, 20:23] > 0).any()  # DT crosses the border, C-* does not
    np.testing.assert_allclose(out[0][:, :20], dt[0][:, :20])  # inside the region it is the DT cone
    assert (out[1] == 0).all()


def test_connected_encoding_needs_its_map():
    with pytest.raises(ValueError, match="prediction"):
        encode_clicks([Click(1, 1, 0)], SHAPE, 2, "cpm", 5.0)


def test_guided_filter_preserves_edges_of_the_guide():
    image = np.zeros((*SHAPE, 3), np.uint8)
    image[:, 20:] = 255  # a sharp edge right of the click
    gf = encode_clicks([Click(20, 17, 0)], SHAPE, 1, "gf", 10.0, image=image)
    dt = encode_clicks([Click(20, 17, 0)], SHAPE, 1, "dt", 10.0)
    assert gf.shape == (1, *SHAPE) and gf.min() >= 0 and gf.max() <= 1
    across = dt[0, 20, 21] - gf[0, 20, 21]
    assert across > 0.1  # the cone is cut at the image edge
    assert gf[0, 20, 17] > 0.5


def test_guided_filter_of_a_flat_guide_is_a_double_box_blur():
    """No edge in the guide: a = 0, b = box(p), so the output is box(box(p)) (He et al.)."""
    source = np.random.default_rng(0).random(SHAPE)
    out = guided_filter(np.full(SHAPE, 0.5), source, 2)
    box = lambda a: ndimage.uniform_filter(a, 5, mode="reflect")  # noqa: E731
    np.testing.assert_allclose(out, box(box(source)), atol=1e-9)


def test_single_channel_encoder_drops_the_class():
    encoder = ClickEncoder("dt", 5.0, n_classes=4, channels="single")
    out = encoder([Click(5, 5, 3), Click(30, 30, 1)], SHAPE)
    assert encoder.n_channels == 1 and out.shape == (1, *SHAPE)
    assert out[0, 5, 5] == 1.0 and out[0, 30, 30] == 1.0
    with pytest.raises(ConfigError):
        ClickEncoder("dt", 5.0, 4, channels="double")


# ---------------------------------------------------------------- click positions
def test_border_clicks_sit_on_borders_with_an_adjacent_class():
    label = two_regions()
    label[:5, :5] = 255
    flat, neighbour = border_candidates(label)
    rows, cols = np.unravel_index(flat, SHAPE)
    assert set(cols) == {19, 20} and set(neighbour) == {0, 1}
    clicks = sample_border_clicks(label, 30, np.ones(2), np.random.default_rng(0))
    assert len(clicks) == 30
    assert all(c.col in (19, 20) and c.cls in (0, 1) for c in clicks)
    assert {c.cls for c in clicks if c.col == 19} == {0, 1}  # both sides' classes are used


def test_mistake_clicks_only_where_the_prediction_is_wrong():
    label = two_regions()
    prediction = label.copy()
    prediction[10:15, 22:30] = 0
    clicks = sample_training_clicks(label, np.ones(2), np.random.default_rng(1), 1.0, 20, position="mistake", prediction=prediction)
    assert clicks and all(prediction[c.row, c.col] != label[c.row, c.col] == c.cls for c in clicks)
    with pytest.raises(ValueError, match="prediction"):
        sample_training_clicks(label, np.ones(2), np.random.default_rng(1), 1.0, 5, position="mistake")


# ---------------------------------------------------------------- training with prediction-dependent clicks
def _source() -> CropSource:
    rng = np.random.default_rng(3)
    labels = [np.tile(two_regions(), (2, 2))[:64, :64] for _ in range(2)]
    images = [np.clip(np.stack([lab * 120 + 60] * 3, -1) + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8) for lab in labels]
    return CropSource.from_arrays(images, labels)


def test_annotate_with_prediction_fills_channels_without_touching_batch_norm():
    spec = NetworkSpec("linknet", "resnet18", 2, encoding="cpm", radius=5.0)
    policy = ClickPolicy(1.0, 5, np.ones(2), spec.click_encoder(), position="mistake")
    assert policy.needs_prediction
    data = ClickCropDataset(_source(), 64, 4, policy, seed=0, epoch=0)
    x, y, idx = (torch.stack(t) if isinstance(t[0], torch.Tensor) else torch.tensor(t) for t in zip(*[data[i] for i in range(4)]))
    assert (x[:, 3:] == 0).all()  # nothing before the first inference
    torch.manual_seed(0)
    model = Segmenter(spec).train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    filled = annotate_with_prediction(model, x, y, idx, policy, seed=0, epoch=0)
    again = annotate_with_prediction(model, x, y, idx, policy, seed=0, epoch=0)
    assert torch.equal(filled, again) and torch.equal(filled[:, :3], x[:, :3])
    assert (filled[:, 3:] > 0).any() and model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())


@pytest.mark.parametrize("encoding,position,annotation", [("cpm", "inside", "per_class"), ("gf", "border", "per_class"), ("dt", "mistake", "single")])
def test_pretrain_runs_with_every_click_variant(encoding, position, annotation):
    spec = NetworkSpec("linknet", "resnet18", 2, annotation=annotation, encoding=encoding, radius=5.0)
    policy = ClickPolicy(0.7, 5, np.ones(2), spec.click_encoder(), position)
    cfg = PretrainConfig(epochs=1, crops_per_epoch=4, crop_size=64, batch_size=2, lr=0.01, momentum=0.9,
                         weight_decay=5e-4, milestones=(), gamma=0.1, checkpoint_every=1, seed=0)
    model, losses = pretrain(spec, _source(), policy, cfg, torch.device("cpu"))
    assert len(losses) == 1 and np.isfinite(losses[0]) and model.spec.in_channels == 3 + spec.n_annotation_channels


# ---------------------------------------------------------------- grid expansion
def _pretrain_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())["pretrain"]


def test_studies_disabled_trains_only_the_main_networks():
    networks, entries = expand_networks(_pretrain_params())
    assert list(networks) == ["linknet"] and entries == []


def test_study_grid_expands_reuses_and_names():
    params = _pretrain_params()
    params["studies"] = {"enabled": True, "grids": {"encoding": ["dt", "gf"], "train_fraction": [0.1, 1.0]},
                         "variants": {"ic_border": {"annotation": "single", "click_position": "border"}}}
    networks, entries = expand_networks(params)
    assert set(networks) == {"linknet", "encoding-gf", "train-fraction-0p1", "variant-ic-border"}
    by_value = {(e.study, e.value): e.network for e in entries}
    assert by_value[("encoding", "dt")] == "linknet" and by_value[("train_fraction", "1.0")] == "linknet"
    assert networks["encoding-gf"] == {**params["base_network"], "encoding": "gf"}
    assert networks["variant-ic-border"]["annotation"] == "single"


def test_unknown_network_key_is_a_config_error():
    params = _pretrain_params()
    params["networks"]["bad"] = {"depth": 3}
    with pytest.raises(ConfigError, match="pretrain.networks.bad.*depth"):
        expand_networks(params)
