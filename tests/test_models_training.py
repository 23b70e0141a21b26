"""Tests for the AC segmenter, checkpoints, training crops, pretraining (resume, NaN guard) and ConfidNet."""

import copy

import numpy as np
import pytest
import torch
from conftest import toy_scene

from dial_core.errors import CheckpointError, ConfigError, TrainingError
from dial_core.models.checkpoint import load_checkpoint, save_checkpoint
from dial_core.models.confidnet import ConfidNet, confidnet_from_state, true_class_probability
from dial_core.models.segmenter import (
    NetworkSpec,
    Segmenter,
    network_input,
    segmenter_from_state,
    segmenter_state,
)
from dial_core.training.confidnet import ConfidNetConfig, train_confidnet
from dial_core.clicks.encoding import ClickEncoder
from dial_core.training.crops import ClickCropDataset, ClickPolicy, CropSource
from dial_core.training.pretrain import PretrainConfig, pretrain

torch.set_num_threads(2)

N_CLASSES = 3
SPEC = NetworkSpec("linknet", "resnet18", N_CLASSES)
CPU = torch.device("cpu")


def _scene(rng: np.random.Generator, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """The shared toy scene, less noisy, with a strip of ignore pixels."""
    return toy_scene(rng, size, noise=25, ignore_rows=4)


def _source(seed: int = 0, n: int = 3, size: int = 96) -> CropSource:
    rng = np.random.default_rng(seed)
    pairs = [_scene(rng, size) for _ in range(n)]
    return CropSource.from_arrays([p[0] for p in pairs], [p[1] for p in pairs])


def _policy(click_probability: float = 0.7) -> ClickPolicy:
    return ClickPolicy(click_probability, 5, np.ones(N_CLASSES), ClickEncoder("dt", 5.0, N_CLASSES))


def _cfg(**changes) -> PretrainConfig:
    base = dict(epochs=2, crops_per_epoch=4, crop_size=64, batch_size=2, lr=0.01, momentum=0.9,
                weight_decay=5e-4, milestones=(1,), gamma=0.1, checkpoint_every=1, seed=3)
    base.update(changes)
    return PretrainConfig(**base)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------------------
# Segmenter
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Segmenter(SPEC).eval()


def test_segmenter_input_channels_and_output_shape(model):
    assert SPEC.in_channels == 3 + N_CLASSES
    assert model.net.encoder.conv1.in_channels == 3 + N_CLASSES
    with torch.no_grad():
        out = model(torch.rand(2, 3 + N_CLASSES, 64, 96))
    assert out.shape == (2, N_CLASSES, 64, 96)
    with pytest.raises(RuntimeError):
        with torch.no_grad():
            model(torch.rand(1, 3, 64, 64))  # RGB only: the AC network needs the annotation channels


def test_spec_with_a_single_annotation_channel():
    spec = NetworkSpec("linknet", "resnet18", 5, annotation="single")
    assert spec.in_channels == 4 and spec.n_annotation_channels == 1
    with torch.no_grad():
        assert Segmenter(spec).eval()(torch.rand(1, 4, 32, 32)).shape == (1, 5, 32, 32)


def test_forward_features(model):
    x = torch.rand(1, 3 + N_CLASSES, 64, 64)
    with torch.no_grad():
        logits, features = model.forward_features(x)
        direct = model(x)
    assert model.feature_channels == 32  # LinkNet's last decoder block (the ConfidNet input)
    assert features.shape == (1, model.feature_channels, 64, 64)
    assert logits.shape == (1, N_CLASSES, 64, 64)
    torch.testing.assert_close(logits, direct, rtol=0, atol=0)


def test_unknown_arch_and_encoder_raise_config_error():
    with pytest.raises(ConfigError, match="segnet"):
        Segmenter(NetworkSpec("segnet", "resnet18", 2))
    with pytest.raises(ConfigError, match="resnet_unknown"):
        Segmenter(NetworkSpec("linknet", "resnet_unknown", 2))


def test_hub_weights_offline_raise_config_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="offline"):
        Segmenter(NetworkSpec("linknet", "resnet18", 2, encoder_weights="imagenet"))
    monkeypatch.delenv("HF_HUB_OFFLINE")  # unset counts as offline too
    with pytest.raises(ConfigError, match="offline"):
        Segmenter(NetworkSpec("linknet", "resnet18", 2, encoder_weights="imagenet"))


def test_segmenter_state_round_trip_through_checkpoint(tmp_path, model):
    path = tmp_path / "net.pt"
    save_checkpoint(path, segmenter_state(model))
    assert list(tmp_path.iterdir()) == [path]  # atomic write leaves no temp file
    payload = load_checkpoint(path)
    assert payload["spec"]["arch"] == "linknet" and payload["spec"]["n_classes"] == N_CLASSES
    restored = segmenter_from_state(payload)
    assert not restored.training
    assert restored.spec == SPEC
    x = torch.rand(2, 3 + N_CLASSES, 64, 64)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))
    assert _same_state(restored.state_dict(), model.state_dict())


def test_network_input():
    image = np.full((4, 5, 3), 255, np.uint8)
    image[..., 1] = 0
    x = network_input(image, None, 2)
    assert x.shape == (5, 4, 5) and x.dtype == torch.float32
    assert torch.all(x[0] == 1) and torch.all(x[1] == 0) and torch.all(x[3:] == 0)
    ann = np.random.default_rng(0).random((2, 4, 5)).astype(np.float32)
    torch.testing.assert_close(network_input(image, ann, 2)[3:], torch.from_numpy(ann))


# --------------------------------------------------------------------------------------------
# checkpoint I/O
# --------------------------------------------------------------------------------------------


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00not a torch file" * 20)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "cut.pt"
    save_checkpoint(path, {"w": torch.arange(10_000, dtype=torch.float32), "epoch": 3})
    assert load_checkpoint(path)["epoch"] == 3
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------------------
# ClickCropDataset
# --------------------------------------------------------------------------------------------


def test_crop_dataset_shapes_and_types():
    data = ClickCropDataset(_source(), 64, 6, _policy(), seed=1, epoch=0)
    assert len(data) == 6
    for i in range(len(data)):
        x, y, _ = data[i]
        assert x.shape == (3 + N_CLASSES, 64, 64) and x.dtype == torch.float32
        assert y.shape == (64, 64) and y.dtype == torch.long
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert set(torch.unique(y).tolist()) <= {0, 1, 2, 255}


def test_crop_dataset_deterministic_per_seed_epoch_index():
    source, policy = _source(), _policy()
    a = ClickCropDataset(source, 64, 8, policy, seed=1, epoch=2)
    b = ClickCropDataset(source, 64, 8, policy, seed=1, epoch=2)
    for i in (5, 0, 3):  # any access order
        xa, ya, _ = a[i]
        xb, yb, _ = b[i]
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other_epoch = ClickCropDataset(source, 64, 8, policy, seed=1, epoch=3)
    other_seed = ClickCropDataset(source, 64, 8, policy, seed=2, epoch=2)
    assert any(not torch.equal(a[i][0], other_epoch[i][0]) for i in range(8))
    assert any(not torch.equal(a[i][0], other_seed[i][0]) for i in range(8))


def test_crop_dataset_click_channels_follow_policy():
    source = _source()
    never = ClickCropDataset(source, 64, 6, _policy(0.0), seed=1, epoch=0)
    always = ClickCropDataset(source, 64, 6, _policy(1.0), seed=1, epoch=0)
    for i in range(6):
        assert not never[i][0][3:].any()
        x, y, _ = always[i]
        ann = x[3:]
        assert ann.any()
        # every click peak (value 1) lies on a pixel of its own class
        for cls, row, col in torch.nonzero(ann == 1.0).tolist():
            assert int(y[row, col]) == cls


def test_small_images_are_padded_with_ignore():
    rng = np.random.default_rng(0)
    image, label = _scene(rng, size=96)
    source = CropSource.from_arrays([image[:40, :50]], [np.zeros((40, 50), np.uint8)])
    x, y, _ = ClickCropDataset(source, 64, 1, _policy(0.0), seed=0, epoch=0)[0]
    assert x.shape == (3 + N_CLASSES, 64, 64)
    assert int((y == 255).sum()) == 64 * 64 - 40 * 50
    assert int((y == 0).sum()) == 40 * 50


# --------------------------------------------------------------------------------------------
# pretraining
# --------------------------------------------------------------------------------------------


def test_pretrain_changes_weights_and_returns_finite_losses():
    cfg = _cfg()
    torch.manual_seed(cfg.seed)
    initial = copy.deepcopy(Segmenter(SPEC).state_dict())  # pretrain seeds the same way
    trained, losses = pretrain(SPEC, _source(), _policy(), cfg, CPU)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert not trained.training
    final = trained.state_dict()
    weights = [k for k in final if final[k].is_floating_point()]
    assert any(not torch.equal(initial[k], final[k]) for k in weights)
    assert not torch.equal(initial["net.encoder.conv1.weight"], final["net.encoder.conv1.weight"])


def test_pretrain_is_reproducible():
    a, la = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1), CPU)
    b, lb = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1), CPU)
    assert la == lb
    assert _same_state(a.state_dict(), b.state_dict())


def test_resume_equivalence(tmp_path):
    source, policy, cfg = _source(), _policy(), _cfg(epochs=2, milestones=(1,))
    full, full_losses = pretrain(SPEC, source, policy, cfg, CPU, tmp_path / "full.pt")
    state = tmp_path / "resumed.pt"
    stopped, first = pretrain(SPEC, source, policy, cfg, CPU, state, stop_after_epoch=lambda e: e == 1)
    assert len(first) == 1 and load_checkpoint(state)["epoch"] == 1
    resumed, rest = pretrain(SPEC, source, policy, cfg, CPU, state)
    assert len(rest) == 1
    assert first + rest == full_losses
    assert load_checkpoint(state)["epoch"] == 2
    assert _same_state(resumed.state_dict(), full.state_dict())
    # the optimiser and scheduler state came back too
    assert load_checkpoint(state)["scheduler"]["last_epoch"] == 2
    assert load_checkpoint(state)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(cfg.lr * cfg.gamma)


def test_resume_of_finished_run_trains_nothing(tmp_path):
    state = tmp_path / "state.pt"
    first, _ = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1), CPU, state)
    again, losses = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1), CPU, state)
    assert losses == []
    assert _same_state(first.state_dict(), again.state_dict())


# A state of another network, other settings or an unreadable one is not resumed: see
# tests/test_training_safety.py (with the divergence guard).


def test_huge_learning_rate_raises_training_error(tmp_path):
    state = tmp_path / "state.pt"
    with pytest.raises(TrainingError, match="lower pretrain.lr"):
        pretrain(SPEC, _source(), _policy(), _cfg(lr=1e12), CPU, state)
    assert not state.exists()


def _nan_source(good_reads: int) -> CropSource:
    """Crops whose images turn NaN after ``good_reads`` reads (i.e. from a chosen epoch on)."""
    base = _source()
    calls = {"n": 0}

    def read(i, r, c, h, w):
        image, label = base.read(i, r, c, h, w)
        calls["n"] += 1
        if calls["n"] > good_reads:
            image = image.astype(np.float64)
            image[0, 0, 0] = np.nan
        return image, label

    return CropSource(base.shapes, read)


def test_nan_loss_raises_and_writes_no_checkpoint(tmp_path):
    state = tmp_path / "state.pt"
    with pytest.raises(TrainingError, match="epoch 1"):
        pretrain(SPEC, _nan_source(0), _policy(), _cfg(), CPU, state)
    assert list(tmp_path.iterdir()) == []


def test_nan_in_second_epoch_keeps_first_checkpoint(tmp_path):
    state = tmp_path / "state.pt"
    cfg = _cfg(epochs=3)
    with pytest.raises(TrainingError, match="epoch 2"):
        pretrain(SPEC, _nan_source(cfg.crops_per_epoch), _policy(), cfg, CPU, state)
    assert load_checkpoint(state)["epoch"] == 1  # the failing epoch wrote nothing
    assert list(tmp_path.iterdir()) == [state]


# --------------------------------------------------------------------------------------------
# ConfidNet
# --------------------------------------------------------------------------------------------


def test_confidnet_output_range_and_shape():
    torch.manual_seed(0)
    head = ConfidNet(32)
    with torch.no_grad():
        out = head(torch.randn(2, 32, 16, 24) * 10)
    assert out.shape == (2, 1, 16, 24)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_confidnet_state_round_trip():
    torch.manual_seed(0)
    head = ConfidNet(32).eval()
    restored = confidnet_from_state({"in_channels": 32, "state_dict": head.state_dict()})
    assert not restored.training
    x = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        assert torch.equal(restored(x), head(x))


def test_true_class_probability_and_mask():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0, :2] = 255
    tcp, valid = true_class_probability(logits, target)
    assert tcp.shape == (2, 1, 4, 5) and valid.shape == (2, 1, 4, 5)
    assert valid.dtype == torch.bool
    assert torch.equal(valid[:, 0], target != 255)
    probs = torch.softmax(logits, dim=1).numpy()
    t = target.numpy()
    for b in range(2):
        for r in range(4):
            for c in range(5):
                if t[b, r, c] != 255:
                    assert tcp[b, 0, r, c].item() == pytest.approx(probs[b, t[b, r, c], r, c], abs=1e-6)


def _fixed_batch(n: int = 8):
    data = ClickCropDataset(_source(seed=5), 64, n, _policy(0.0), seed=99, epoch=0)
    return torch.stack([data[i][0] for i in range(n)]), torch.stack([data[i][1] for i in range(n)])


def _mse(segmenter, head, x, y) -> float:
    with torch.no_grad():
        logits, features = segmenter.forward_features(x)
        tcp, valid = true_class_probability(logits, y)
        return float(((head.eval()(features) - tcp) ** 2)[valid].mean())


def test_train_confidnet_lowers_mse_and_keeps_segmenter():
    segmenter, _ = pretrain(SPEC, _source(), _policy(), _cfg(epochs=1, crops_per_epoch=8, batch_size=4), CPU)
    before = copy.deepcopy(segmenter.state_dict())
    cfg = ConfidNetConfig(epochs=2, crops_per_epoch=8, crop_size=64, batch_size=4, lr=1e-3, seed=1)
    torch.manual_seed(cfg.seed)
    initial_head = ConfidNet(segmenter.feature_channels)  # the head train_confidnet starts from
    head, losses = train_confidnet(segmenter, _source(), _policy(0.0), cfg, CPU)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert head.in_channels == segmenter.feature_channels
    assert _same_state(segmenter.state_dict(), before)  # frozen weights and batch-norm statistics
    x, y = _fixed_batch()
    assert _mse(segmenter, head, x, y) < _mse(segmenter, initial_head, x, y)


# --------------------------------------------------------------------------------------------
# batches without any labelled pixel
# --------------------------------------------------------------------------------------------


def _source_with_unlabelled_first_batch(seed: int, batch_size: int) -> CropSource:
    """Two images, one entirely ignore (255); the first batch of epoch 0 draws only from it."""
    picks = [int(np.random.default_rng([seed, 0, i]).integers(2)) for i in range(batch_size)]
    assert len(set(picks)) == 1, "choose a seed whose first batch comes from one image"
    image, label = _scene(np.random.default_rng(0))
    images, labels = [image, image.copy()], [label, label.copy()]
    labels[picks[0]][:] = 255
    return CropSource.from_arrays(images, labels)


def test_pretrain_survives_a_batch_without_labels():
    seed = 5  # crops 0 and 1 of epoch 0 both come from image 1
    source = _source_with_unlabelled_first_batch(seed, 2)
    _, losses = pretrain(SPEC, source, _policy(), _cfg(epochs=1, seed=seed), CPU)
    assert len(losses) == 1 and np.isfinite(losses[0])


def test_confidnet_survives_a_batch_without_labels():
    torch.manual_seed(0)
    segmenter = Segmenter(SPEC)
    seed = 5  # train_confidnet draws crops with seed cfg.seed + 1
    source = _source_with_unlabelled_first_batch(seed, 2)
    cfg = ConfidNetConfig(epochs=1, crops_per_epoch=4, crop_size=64, batch_size=2, lr=1e-3, seed=seed - 1)
    _, losses = train_confidnet(segmenter, source, _policy(0.0), cfg, CPU)
    assert len(losses) == 1 and np.isfinite(losses[0])
