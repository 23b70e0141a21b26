"""Training never silently continues with other settings, and an exploding loss stops it.

Resume: the resumable state records what defines the run (config, seed, click policy, network,
data); a state made otherwise, unreadable or from an older format is not continued — training
starts from scratch with one log line naming what differs. Divergence: a finite loss far above
the first epoch's mean raises :class:`TrainingError` like a NaN does, and no model is written.
"""

from __future__ import annotations

import json
import logging
import runpy
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_models_training import _cfg, _same_state, _source

import dial_core.training.confidnet as confidnet_module
import dial_core.training.pretrain as pretrain_module
from dial_core.clicks.encoding import ClickEncoder
from dial_core.errors import TrainingError
from dial_core.models.checkpoint import load_checkpoint, save_checkpoint
from dial_core.models.segmenter import NetworkSpec, Segmenter
from dial_core.training.confidnet import ConfidNetConfig, train_confidnet
from dial_core.training.crops import ClickPolicy
from dial_core.training.pretrain import DIVERGENCE_FACTOR, pretrain, training_fingerprint

ROOT = Path(__file__).resolve().parents[1]
N_CLASSES = 3
SPEC = NetworkSpec("linknet", "resnet18", N_CLASSES)
CPU = torch.device("cpu")
LOGGER = "dial_core.training.pretrain"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _policy(max_clicks: int = 5, weights=None, radius: float = 5.0) -> ClickPolicy:
    weights = np.ones(N_CLASSES) if weights is None else np.asarray(weights, float)
    return ClickPolicy(0.7, max_clicks, weights, ClickEncoder("dt", radius, N_CLASSES))




def _stopped_after_first_epoch(state: Path, **run) -> list[float]:
    """A run of ``run`` (defaults: the tiny config) killed right after its first checkpoint."""
    args = dict(spec=SPEC, source=_source(), policy=_policy(), cfg=_cfg(), data=None) | run
    _, losses = pretrain(args["spec"], args["source"], args["policy"], args["cfg"], CPU, state,
                         stop_after_epoch=lambda e: e == 1, data=args["data"])
    assert load_checkpoint(state)["epoch"] == 1
    return losses


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


# --------------------------------------------------------------------------------------------
# resume only with the same settings
# --------------------------------------------------------------------------------------------


def test_state_records_the_fingerprint_and_first_epoch_reference(tmp_path):
    state = tmp_path / "state.pt"
    losses = _stopped_after_first_epoch(state, data={"images": ["a", "b", "c"]})
    saved = load_checkpoint(state)
    fingerprint = saved["fingerprint"]
    assert fingerprint == training_fingerprint(SPEC, _policy(), _cfg(), _source(), {"images": ["a", "b", "c"]})
    for key in ("lr", "momentum", "weight_decay", "milestones", "gamma", "seed", "crops_per_epoch", "crop_size",
                "batch_size", "mixed_precision", "click_probability", "max_clicks", "class_weights",
                "click_encoder", "click_position", "network.encoding", "data.image_shapes", "data.images"):
        assert key in fingerprint, key
    for runtime in ("workers", "checkpoint_every", "divergence_factor", "epochs"):
        assert runtime not in fingerprint, runtime
    assert fingerprint["milestones"] == [1] and fingerprint["data.images"] == ["a", "b", "c"]
    json.dumps(fingerprint)  # plain values only
    assert saved["reference_loss"] == pytest.approx(losses[0])


def test_identical_settings_resume_and_say_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    state = tmp_path / "state.pt"
    first = _stopped_after_first_epoch(state, data={"images": ["a"]})
    model, rest = pretrain(SPEC, _source(), _policy(), _cfg(), CPU, state, data={"images": ["a"]})
    assert len(rest) == 1  # only the second epoch was trained
    assert any("resuming from" in r.getMessage() for r in caplog.records)
    assert _warnings(caplog) == []
    full, full_losses = pretrain(SPEC, _source(), _policy(), _cfg(), CPU)
    assert first + rest == full_losses and _same_state(model.state_dict(), full.state_dict())


CHANGES = {
    "lr": (dict(cfg=_cfg(lr=0.02)), "lr: 0.01 → 0.02"),
    "milestones": (dict(cfg=_cfg(milestones=(2,))), "milestones: [1] → [2]"),
    "seed": (dict(cfg=_cfg(seed=4)), "seed: 3 → 4"),
    "crops_per_epoch": (dict(cfg=_cfg(crops_per_epoch=6)), "crops_per_epoch: 4 → 6"),
    "max_clicks": (dict(policy=_policy(max_clicks=7)), "max_clicks: 5 → 7"),
    "class_weights": (dict(policy=_policy(weights=[1.0, 2.0, 0.5])), "class_weights: [1.0, 1.0, 1.0] → [1.0, 2.0, 0.5]"),
    "click_encoder": (dict(policy=_policy(radius=9.0)), "click_encoder: "),
    "training_images": (dict(data={"images": ["a", "c"]}), "data.images: ['a', 'b'] → ['a', 'c']"),
    "image_shapes": (dict(source=_source(n=2)), "data.image_shapes: "),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_changed_settings_retrain_from_scratch(tmp_path, caplog, change):
    run, expected = CHANGES[change]
    state = tmp_path / "state.pt"
    _stopped_after_first_epoch(state, data={"images": ["a", "b"]})
    new = dict(spec=SPEC, source=_source(), policy=_policy(), cfg=_cfg(), data={"images": ["a", "b"]}) | run
    # one epoch: a resumed run would train epoch 2 and checkpoint it; a fresh one trains epoch 1
    _, losses = pretrain(new["spec"], new["source"], new["policy"], new["cfg"], CPU, state,
                         stop_after_epoch=lambda e: True, data=new["data"])
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "other settings" in warnings[0] and "training from scratch" in warnings[0]
    assert expected in warnings[0]
    assert warnings[0].count("→") == 1  # only the key that differs
    assert len(losses) == 1
    saved = load_checkpoint(state)  # the stale state was replaced by the new run's first checkpoint
    assert saved["epoch"] == 1 and saved["reference_loss"] == pytest.approx(losses[0])
    assert saved["fingerprint"] == training_fingerprint(new["spec"], new["policy"], new["cfg"], new["source"], new["data"])


def test_lower_epochs_than_the_state_retrain_from_scratch(tmp_path, caplog):
    state = tmp_path / "state.pt"
    pretrain(SPEC, _source(), _policy(), _cfg(epochs=3), CPU, state, stop_after_epoch=lambda e: e == 2)
    assert load_checkpoint(state)["epoch"] == 2
    model, losses = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1), CPU, state)
    assert len(losses) == 1
    (warning,) = _warnings(caplog)
    assert "epochs: 2 (reached) → 1" in warning and "training from scratch" in warning
    fresh, fresh_losses = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1), CPU)
    assert losses == fresh_losses and _same_state(model.state_dict(), fresh.state_dict())
    assert load_checkpoint(state)["epoch"] == 1


def test_more_epochs_than_planned_continue(tmp_path, caplog):
    """Every epoch draws from its own seed and the schedule does not depend on ``epochs``: a
    finished 1-epoch state continued to 2 epochs is the 2-epoch run (design check, not new)."""
    state = tmp_path / "state.pt"
    first, _ = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1), CPU, state)
    model, rest = pretrain(SPEC, _source(), _policy(), _cfg(epochs=2), CPU, state)
    assert len(rest) == 1 and _warnings(caplog) == []
    full, full_losses = pretrain(SPEC, _source(), _policy(), _cfg(epochs=2), CPU)
    assert full_losses[1:] == rest and _same_state(model.state_dict(), full.state_dict())


def test_state_of_another_network_retrains_from_scratch(tmp_path, caplog):
    """Was a CheckpointError ("delete it to start afresh"): the state path is per network, so a
    state of another spec there is stale by construction; retraining loses nothing the user asked for."""
    state = tmp_path / "state.pt"
    _stopped_after_first_epoch(state)
    other = NetworkSpec("linknet", "resnet18", N_CLASSES, annotation="single")
    policy = ClickPolicy(0.7, 5, np.ones(N_CLASSES), other.click_encoder())
    model, losses = pretrain(other, _source(), policy, _cfg(), CPU, state)
    assert len(losses) == 2 and model.spec == other
    (warning,) = _warnings(caplog)
    assert "network.annotation: 'per_class' → 'single'" in warning and "training from scratch" in warning
    assert load_checkpoint(state)["spec"]["annotation"] == "single"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_state_retrains_from_scratch(tmp_path, caplog, damage):
    state = tmp_path / "state.pt"
    if damage == "garbage":
        state.write_bytes(b"\x00not a torch file" * 20)
    else:
        _stopped_after_first_epoch(state)
        state.write_bytes(state.read_bytes()[:1000])
    model, losses = pretrain(SPEC, _source(), _policy(), _cfg(), CPU, state)
    (warning,) = _warnings(caplog)
    assert "cannot be read" in warning and "training from scratch" in warning and str(state) in warning
    fresh, fresh_losses = pretrain(SPEC, _source(), _policy(), _cfg(), CPU)
    assert losses == fresh_losses and _same_state(model.state_dict(), fresh.state_dict())
    assert load_checkpoint(state)["epoch"] == 2


def test_state_without_recorded_settings_retrains_from_scratch(tmp_path, caplog):
    """A state of the previous format (no fingerprint) cannot prove its settings: not continued."""
    state = tmp_path / "state.pt"
    _stopped_after_first_epoch(state)
    old = load_checkpoint(state)
    del old["fingerprint"], old["reference_loss"]
    save_checkpoint(state, old)
    _, losses = pretrain(SPEC, _source(), _policy(), _cfg(), CPU, state)
    assert len(losses) == 2
    (warning,) = _warnings(caplog)
    assert "records no training settings" in warning


def test_state_that_cannot_be_restored_retrains_from_scratch(tmp_path, caplog):
    """Same settings but a model payload that does not load (e.g. a library changed its layers)."""
    state = tmp_path / "state.pt"
    _stopped_after_first_epoch(state)
    saved = load_checkpoint(state)
    saved["model"] = {"net.encoder.conv1.weight": torch.zeros(1)}
    save_checkpoint(state, saved)
    model, losses = pretrain(SPEC, _source(), _policy(), _cfg(), CPU, state)
    (warning,) = _warnings(caplog)
    assert "cannot be restored" in warning and "training from scratch" in warning
    fresh, fresh_losses = pretrain(SPEC, _source(), _policy(), _cfg(), CPU)
    assert losses == fresh_losses and _same_state(model.state_dict(), fresh.state_dict())


# --------------------------------------------------------------------------------------------
# divergence
# --------------------------------------------------------------------------------------------


def _exploding_loss(monkeypatch, module, name: str, after_calls: int, scale: float) -> None:
    """Wrap ``module.name`` so that every call after the first ``after_calls`` is ``scale`` × bigger."""
    real, calls = getattr(module, name), {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * scale if calls["n"] > after_calls else out

    monkeypatch.setattr(module, name, wrapped)


BATCHES_PER_EPOCH = _cfg().crops_per_epoch // _cfg().batch_size


def test_exploding_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    state = tmp_path / "state.pt"
    _exploding_loss(monkeypatch, pretrain_module, "segmentation_loss", BATCHES_PER_EPOCH, 1e6)
    with pytest.raises(TrainingError) as caught:
        pretrain(SPEC, _source(), _policy(), _cfg(epochs=3), CPU, state)
    message = str(caught.value)
    assert "exploded" in message and "epoch 2" in message and "mean loss of the first epoch" in message
    assert "lower pretrain.lr or check the labels" in message and "no checkpoint was written" in message
    assert load_checkpoint(state)["epoch"] == 1  # the diverging epoch wrote nothing
    assert list(tmp_path.iterdir()) == [state]


def test_loss_exploding_in_the_first_epoch_stops_it(tmp_path, monkeypatch):
    state = tmp_path / "state.pt"
    _exploding_loss(monkeypatch, pretrain_module, "segmentation_loss", 1, 1e6)
    with pytest.raises(TrainingError, match=r"epoch 1, more than 1000 × the loss of the first batch"):
        pretrain(SPEC, _source(), _policy(), _cfg(), CPU, state)
    assert list(tmp_path.iterdir()) == []


def test_first_epoch_reference_survives_resume(tmp_path, monkeypatch):
    state = tmp_path / "state.pt"
    first = _stopped_after_first_epoch(state)
    assert load_checkpoint(state)["reference_loss"] == pytest.approx(first[0])
    # every batch of the resumed run is exploded: only the stored reference can tell
    _exploding_loss(monkeypatch, pretrain_module, "segmentation_loss", 0, 1e6)
    with pytest.raises(TrainingError, match=rf"epoch 2, .*\({first[0]:.4g}\)"):
        pretrain(SPEC, _source(), _policy(), _cfg(), CPU, state)


def test_divergence_factor_is_the_threshold(tmp_path, monkeypatch):
    _exploding_loss(monkeypatch, pretrain_module, "segmentation_loss", BATCHES_PER_EPOCH, 50.0)
    _, losses = pretrain(SPEC, _source(), _policy(), _cfg(), CPU)  # 50 × is below the default 1000 ×
    assert len(losses) == 2 and DIVERGENCE_FACTOR == 1000.0
    _exploding_loss(monkeypatch, pretrain_module, "segmentation_loss", BATCHES_PER_EPOCH, 50.0)
    with pytest.raises(TrainingError, match="more than 10 ×"):
        pretrain(SPEC, _source(), _policy(), _cfg(divergence_factor=10.0), CPU)


def test_nan_loss_still_raises(tmp_path, monkeypatch):
    _exploding_loss(monkeypatch, pretrain_module, "segmentation_loss", BATCHES_PER_EPOCH, float("nan"))
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2; lower pretrain.lr"):
        pretrain(SPEC, _source(), _policy(), _cfg(), CPU, tmp_path / "state.pt")


def test_confidnet_exploding_loss_raises(monkeypatch):
    torch.manual_seed(0)
    segmenter = Segmenter(SPEC)
    real = confidnet_module.true_class_probability
    calls = {"n": 0}

    def far_targets(logits, target):  # targets far outside [0, 1] from the second epoch on
        calls["n"] += 1
        tcp, valid = real(logits, target)
        return (tcp * 1e4 if calls["n"] > 2 else tcp), valid

    monkeypatch.setattr(confidnet_module, "true_class_probability", far_targets)
    cfg = ConfidNetConfig(epochs=2, crops_per_epoch=4, crop_size=64, batch_size=2, lr=1e-3, seed=1)
    with pytest.raises(TrainingError, match=r"ConfidNet loss exploded to .* at epoch 2, .*lower confidnet.lr"):
        train_confidnet(segmenter, _source(), _policy(), cfg, CPU)


# --------------------------------------------------------------------------------------------
# the workflow script writes no model when training diverges
# --------------------------------------------------------------------------------------------


def _canonical_dataset(root: Path) -> list[str]:
    from dial_core.data.canonical import write_dataset
    from dial_core.data.synthetic_adapter import synthetic_dataset

    info, samples = synthetic_dataset("synthetic", 4, 96, "A", "buildings", seed=0)
    ids = write_dataset(root, info, samples).images
    (root / "split.json").write_text(json.dumps({"train": ids[:3], "val": ids[3:]}))
    return ids


def test_pretrain_script_writes_no_model_when_training_diverges(tmp_path, monkeypatch):
    root = tmp_path / "data" / "processed" / "synthetic"
    _canonical_dataset(root)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    train = {k: v for k, v in params["pretrain"].items() if k not in ("base_network", "networks", "studies")}
    train.update(epochs=2, crops_per_epoch=4, crop_size=64, batch_size=2, milestones=[1], checkpoint_every=1)
    models = tmp_path / "data" / "models"
    sm = types.SimpleNamespace(
        input=types.SimpleNamespace(info=str(root / "dataset.json"), split=str(root / "split.json")),
        output=types.SimpleNamespace(model=str(models / "linknet.pt"), metrics=str(tmp_path / "metrics.json")),
        params=types.SimpleNamespace(network=params["pretrain"]["base_network"], train=train,
                                     tiling={"size": 64, "overlap": 16}, seed=0, state=str(models / "linknet.state.pt")),
        wildcards=types.SimpleNamespace(dataset="synthetic", network="linknet"),
        log=[str(tmp_path / "pretrain.log")], threads=1,
    )
    _exploding_loss(monkeypatch, pretrain_module, "segmentation_loss", BATCHES_PER_EPOCH, 1e6)
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level
    try:
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(ROOT / "workflow" / "scripts" / "pretrain.py"), init_globals={"snakemake": sm})
    finally:
        for handler in root_logger.handlers[:]:
            if handler not in handlers:
                root_logger.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root_logger.handlers:
                root_logger.addHandler(handler)
        root_logger.setLevel(level)
        torch.set_num_threads(1)
    assert exit_.value.code == 1
    assert not Path(sm.output.model).exists() and not Path(sm.output.metrics).exists()
    assert load_checkpoint(sm.params.state)["epoch"] == 1  # kept for a rerun with a lower lr (which retrains)
    log = Path(sm.log[0]).read_text()
    assert "exploded" in log and "lower pretrain.lr" in log and "Traceback" not in log
