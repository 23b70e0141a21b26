"""The acquisition functions on hand-made probabilities, the MC-dropout paths, ODIN's direction and
the window loop that computes every map on the device."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dial_core.active.acquisition import (
    ACQUISITIONS,
    AcquisitionConfig,
    McDropoutConfig,
    OdinConfig,
    area_disagreement_pixels,
    bald_pixels,
    entropy_pixels,
    least_confidence_pixels,
    margin_pixels,
    mc_variance_pixels,
    patch_runs,
)
from dial_core.active.odin import odin_max_softmax
from dial_core.active.uncertainty import predict_with_uncertainty
from dial_core.errors import ConfigError
from dial_core.interactive.inference import predict_probs
from dial_core.models.confidnet import ConfidNet
from dial_core.models.mc_dropout import dropout_masks, mc_logits
from dial_core.models.segmenter import NetworkSpec, Segmenter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(one_torch_thread):
    torch.manual_seed(0)
    net = Segmenter(NetworkSpec("linknet", "resnet18", 3)).eval()
    with torch.no_grad():  # BN running stats that are not the identity, so passes differ visibly
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def _probs(*columns) -> torch.Tensor:
    """(N, 1, len) probabilities from per-pixel class vectors."""
    return torch.tensor(columns, dtype=torch.float32).T.unsqueeze(1)


# --- pixel maps on known values ---------------------------------------------------------------------

def test_entropy_of_a_uniform_map_is_log_n_and_of_a_certain_one_zero():
    assert entropy_pixels(torch.full((4, 3, 3), 0.25)).numpy() == pytest.approx(np.full((3, 3), math.log(4)))
    assert entropy_pixels(_probs([1.0, 0.0, 0.0])).item() == pytest.approx(0.0, abs=1e-6)


def test_margin_and_least_confidence():
    p = _probs([0.6, 0.3, 0.1], [0.4, 0.4, 0.2])
    np.testing.assert_allclose(margin_pixels(p)[0].numpy(), [1 - 0.3, 1.0], rtol=1e-6)
    np.testing.assert_allclose(least_confidence_pixels(p)[0].numpy(), [0.4, 0.6], rtol=1e-6)


def test_mc_variance_max_and_mean_over_classes():
    passes = torch.stack([_probs([1.0, 0.0]), _probs([0.0, 1.0])])  # (T=2, N=2, 1, 1): variance 0.25 each class
    assert mc_variance_pixels(passes, "max").item() == pytest.approx(0.25)
    passes = torch.stack([_probs([0.5, 0.3, 0.2]), _probs([0.3, 0.3, 0.4])])  # class variances 0.01, 0, 0.01
    assert mc_variance_pixels(passes, "max").item() == pytest.approx(0.01)
    assert mc_variance_pixels(passes, "mean").item() == pytest.approx(0.02 / 3)


def test_bald_is_zero_when_passes_agree_and_log2_when_they_split():
    same = torch.stack([_probs([0.7, 0.3])] * 5)
    assert bald_pixels(same).item() == pytest.approx(0.0, abs=1e-6)
    split = torch.stack([_probs([1.0, 0.0]), _probs([0.0, 1.0])])
    assert bald_pixels(split).item() == pytest.approx(math.log(2), rel=1e-5)


def test_area_disagreement_is_minus_one_when_passes_agree():
    one_hot = torch.stack([_probs([0.0, 1.0, 0.0], [1.0, 0.0, 0.0])] * 4)
    assert area_disagreement_pixels(one_hot).numpy() == pytest.approx(np.full((1, 2), -1.0))
    confident = torch.stack([_probs([0.2, 0.8])] * 3)  # every pass agrees, softmax f_i: −0.8; one-hot f_i: −1
    assert area_disagreement_pixels(confident, "softmax").item() == pytest.approx(-0.8)
    assert area_disagreement_pixels(confident, "one_hot").item() == pytest.approx(-1.0)


def test_area_disagreement_region_mean_equals_dice_of_eq_1():
    """The region mean of the pixel map is −mean_i Dice(f_i, one-hot mean), Dice as AD's Eq. 1."""
    passes = torch.softmax(torch.randn(5, 4, 6, 7, generator=torch.Generator().manual_seed(1)) * 2, dim=1)
    aggregate = torch.nn.functional.one_hot(passes.mean(0).argmax(0), 4).permute(2, 0, 1).float()
    dice = [2 * (f * aggregate).sum() / (f.sum() + aggregate.sum()) for f in passes]
    assert area_disagreement_pixels(passes).mean().item() == pytest.approx(-torch.stack(dice).mean().item(), rel=1e-5)


# --- MC dropout: encoder once, decoder batched -------------------------------------------------------

def test_mc_dropout_with_p_zero_has_zero_variance(model):
    x = torch.rand(1, 6, 64, 64)
    cfg = McDropoutConfig(p=0.0, passes=3)
    with torch.no_grad():
        logits, _ = mc_logits(model, x, cfg, torch.Generator().manual_seed(0))
        plain = model(x)
    torch.testing.assert_close(logits, plain.expand_as(logits), rtol=1e-4, atol=1e-4)
    assert mc_variance_pixels(torch.softmax(logits, 1)).abs().max().item() < 1e-10


@pytest.mark.parametrize("at", ["skips", "head"])
def test_encoder_once_path_equals_naive_full_passes_with_the_same_masks(model, at):
    """Each batched pass equals a whole forward of the network with that pass's mask applied by a hook."""
    cfg = McDropoutConfig(p=0.3, passes=4, at=at, kind="channel" if at == "skips" else "element")
    x = torch.rand(1, 6, 64, 64)
    net = model.net
    with torch.no_grad():
        targets = net.encoder(x)[1:] if at == "skips" else [net.decoder(net.encoder(x))]
        masks = dropout_masks([t.shape for t in targets], cfg, cfg.passes, torch.Generator().manual_seed(3), x.device)
        batched, _ = mc_logits(model, x, cfg, masks=masks)
        naive = []
        for t in range(cfg.passes):
            module = net.encoder if at == "skips" else net.decoder
            if at == "skips":
                hook = module.register_forward_hook(lambda m, i, out: [out[0], *(f * k[t : t + 1] for f, k in zip(out[1:], masks))])
            else:
                hook = module.register_forward_hook(lambda m, i, out: out * masks[0][t : t + 1])
            naive.append(net(x))
            hook.remove()
    torch.testing.assert_close(batched, torch.cat(naive), rtol=1e-4, atol=1e-4)
    assert batched.var(dim=0).mean() > 1e-6  # the passes do differ


def test_encoder_once_path_matches_torch_dropout_in_distribution(model):
    """Over many passes the batched path's mean and spread match nn.Dropout2d in training mode."""
    cfg = McDropoutConfig(p=0.1, passes=200)
    x = torch.rand(1, 6, 32, 32)
    net = model.net
    with torch.no_grad():
        ours = torch.softmax(mc_logits(model, x, cfg, torch.Generator().manual_seed(0))[0], 1)
        torch.manual_seed(0)
        reference = []
        for _ in range(cfg.passes):
            features = net.encoder(x)
            dropped = [features[0]] + [torch.nn.functional.dropout2d(f, 0.1, training=True) for f in features[1:]]
            reference.append(torch.softmax(net.segmentation_head(net.decoder(dropped)), 1))
        reference = torch.cat(reference)
    assert (ours.mean(0) - reference.mean(0)).abs().max() < 0.03
    assert ours.std(0).mean().item() == pytest.approx(reference.std(0).mean().item(), rel=0.25)


def test_deterministic_prediction_rides_in_the_same_batch(model):
    cfg = McDropoutConfig(p=0.2, passes=3, prediction="deterministic")
    x = torch.rand(1, 6, 64, 64)
    with torch.no_grad():
        passes, plain = mc_logits(model, x, cfg, torch.Generator().manual_seed(0))
        torch.testing.assert_close(plain, model(x), rtol=1e-4, atol=1e-4)
    assert passes.shape == (3, 3, 64, 64)


# --- ODIN ---------------------------------------------------------------------------------------------

def test_odin_reference_sign_raises_and_dial_sign_lowers_the_max_softmax(model):
    x = torch.rand(1, 6, 64, 64)
    base = OdinConfig(temperature=100.0, epsilon=0.0)
    with torch.no_grad():
        unperturbed, _ = odin_max_softmax(model, x, base)
    up, _ = odin_max_softmax(model, x, OdinConfig(epsilon=1 / 255, sign="reference"))
    down, _ = odin_max_softmax(model, x, OdinConfig(epsilon=1 / 255, sign="dial"))
    assert up.mean() > unperturbed.mean() > down.mean()
    assert all(p.grad is None for p in model.parameters())  # a backward to the input only


def test_odin_ignores_the_annotation_channels(model):
    x = torch.rand(1, 6, 64, 64)
    clicked = x.clone()
    clicked[:, 3:] = 1.0
    torch.testing.assert_close(odin_max_softmax(model, x, OdinConfig())[0], odin_max_softmax(model, clicked, OdinConfig())[0])


# --- the window loop -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ACQUISITIONS))
def test_every_acquisition_gives_a_map_and_the_plain_softmax(model, image, name):
    head = ConfidNet(model.feature_channels).eval()
    probs, scores = predict_with_uncertainty(model, image, None, name, window=48, overlap=16, confidnet=head, seed=1)
    plain, _ = predict_probs(model, image, None, 48, 16)
    assert probs.shape == plain.shape
    if ACQUISITIONS[name].needs == "mc":  # the mean of the dropout passes: close to, not equal to, the plain softmax
        assert np.abs(probs - plain).mean() < 0.05
    else:
        np.testing.assert_allclose(probs, plain, atol=1e-5)
    if name == "random":
        assert scores is None
    else:
        assert scores.shape == image.shape[:2] and np.isfinite(scores).all()


def test_mc_maps_are_seeded(model, image):
    a = predict_with_uncertainty(model, image, None, "area_disagreement", 48, 16, seed=5)[1]
    b = predict_with_uncertainty(model, image, None, "area_disagreement", 48, 16, seed=5)[1]
    c = predict_with_uncertainty(model, image, None, "area_disagreement", 48, 16, seed=6)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a >= -1.0 - 1e-6).all() and (a <= 0.0).all()


def test_the_entropy_map_matches_numpy_after_inference(model, image):
    from dial_core.active.acquisition import entropy_map

    probs, scores = predict_with_uncertainty(model, image, None, "entropy", 64, 0)
    np.testing.assert_allclose(scores, entropy_map(probs), rtol=1e-4, atol=1e-5)


def test_confidnet_needs_its_head(model, image):
    with pytest.raises(ValueError, match="ConfidNet"):
        predict_with_uncertainty(model, image, None, "confidnet", 64, 0)


# --- settings and registry --------------------------------------------------------------------------

def test_settings_come_from_params_and_bad_values_name_the_key():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = AcquisitionConfig.from_params(params["evaluation"]["acquisition"])
    assert (cfg.mc_dropout.p, cfg.mc_dropout.passes, cfg.odin.temperature, cfg.odin.sign) == (0.1, 5, 100, "reference")
    assert cfg.odin.epsilon == pytest.approx(1 / 255)
    with pytest.raises(ConfigError, match="mc_dropout.at"):
        McDropoutConfig(at="everywhere")
    with pytest.raises(ConfigError, match="odin.sign"):
        OdinConfig(sign="up")


def test_registry_and_schema_agree():
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    assert schema["$defs"]["acquisition"]["enum"] == list(ACQUISITIONS)


def test_patch_runs_from_a_list_or_a_mapping():
    assert patch_runs(["ac", "disca"], ["entropy", "random"]) == [
        ("ac", "entropy"), ("ac", "random"), ("disca", "entropy"), ("disca", "random")]
    assert patch_runs(["ac", "disca"], {"ac": ["odin"], "disca": ["mc_dropout"]}) == [("ac", "odin"), ("disca", "mc_dropout")]
    with pytest.raises(ConfigError, match="exactly the methods"):
        patch_runs(["ac", "disca"], {"ac": ["entropy"]})
    with pytest.raises(ConfigError, match="unknown acquisition 'curiosity'"):
        patch_runs(["ac"], ["curiosity"])
