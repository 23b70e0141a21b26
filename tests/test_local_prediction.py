"""Exact local re-prediction after a click (issue 8): the encoders' reach, crop encodings equal to
whole-image ones, probabilities equal to whole-image inference, and few windows inferred per click."""

import numpy as np
import pytest
import torch

from dial_core.clicks.encoding import ENCODINGS, ClickEncoder, guided_filter
from dial_core.clicks.types import Click
from dial_core.interactive import local_prediction
from dial_core.interactive.inference import predict_probs
from dial_core.interactive.local_prediction import ClickPredictor, crop_encoder
from dial_core.models.segmenter import NetworkSpec, Segmenter

N = 3
SHAPE = (200, 330)  # not multiples of 32: padded windows at no border, flush last row / column
WINDOW, OVERLAP = 64, 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _data(seed: int = 0, shape: tuple[int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A blocky 3-class label and a noisy image of it."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, N, (shape[0] // 20 + 1, shape[1] // 20 + 1))
    label = np.kron(coarse, np.ones((20, 20), np.int64))[: shape[0], : shape[1]].astype(np.uint8)
    palette = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]])
    image = np.clip(palette[label] + rng.normal(0, 30, (*shape, 3)), 0, 255).astype(np.uint8)
    return image, label


class _Tiny(torch.nn.Module):
    """A seeded network cheap enough for many whole-image references; the window mean makes every
    output pixel depend on the whole window, as in a deep network, so a stale window shows."""

    def __init__(self, in_channels: int, n_classes: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(16, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.head(torch.cat([h, h.mean((2, 3), keepdim=True).expand_as(h)], 1))


def _model(encoding: str = "dt", radius: float = 5.0, annotation: str = "per_class", linknet: bool = False) -> Segmenter:
    """LinkNet-ResNet18 as the workflow builds it (untrained, seeded), or the same with a tiny body."""
    torch.manual_seed(0)
    model = Segmenter(NetworkSpec("linknet", "resnet18", N, annotation=annotation, encoding=encoding, radius=radius))
    if not linknet:
        model.net = _Tiny(model.spec.in_channels, N)
    return model.eval()


def _clicks(rng: np.random.Generator, shape: tuple[int, int]) -> list[Click]:
    """Random clicks plus ones on borders, on window seams and on top of an earlier click."""
    seam_r, seam_c = WINDOW - OVERLAP // 2, (WINDOW - OVERLAP) + OVERLAP // 2 + 3  # inside the overlaps
    clicks = [Click(int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1])), int(rng.integers(0, N))),
              Click(0, shape[1] - 1, 1), Click(seam_r, seam_c, 2), Click(seam_r + 2, seam_c - 3, 0),
              Click(shape[0] - 1, int(rng.integers(0, shape[1])), 1)]
    clicks.append(Click(clicks[2].row, clicks[2].col, 1))  # the same pixel, another class
    return clicks


def _run(model: Segmenter, cache_bytes: int = local_prediction.DEFAULT_CACHE_BYTES, seed: int = 0,
         shape: tuple[int, int] = SHAPE, every_click: bool = True) -> ClickPredictor:
    """Clicks one by one; the channels equal the whole-image encoding after each, the probabilities
    equal whole-image inference bit for bit (after each click, or after the last one)."""
    image, label = _data(seed, shape)
    predictor = ClickPredictor(model, image, WINDOW, OVERLAP, cache_bytes)
    probs0, _ = predict_probs(model, image, None, WINDOW, OVERLAP)
    assert np.array_equal(predictor.probs, probs0)
    encode = crop_encoder(model.spec.click_encoder(), image, predictor.prediction.copy(), label)
    clicks: list[Click] = []
    steps = _clicks(np.random.default_rng(seed), shape)
    for step, click in enumerate(steps, 1):
        clicks.append(click)
        predictor.update(clicks, encode)
        whole = encode(clicks, (0, 0, *shape))
        assert np.array_equal(predictor.channels, whole), f"crop encoding differs after {click}"
        if every_click or step == len(steps):
            probs, _ = predict_probs(model, image, whole, WINDOW, OVERLAP)
            assert np.abs(predictor.probs - probs).max() <= 1e-5
            assert np.array_equal(predictor.probs, probs), f"not bitwise equal after {click}"
            assert np.array_equal(predictor.prediction, probs.argmax(0))
    return predictor


# ------------------------------------------------------------------------------------------------
# reach
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("radius", [1.5, 5.0, 10.0])
def test_a_click_changes_the_channels_within_reach_only(encoding, radius):
    rng = np.random.default_rng(1)
    shape = (150, 160)
    image = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    maps = rng.integers(0, 2, shape).astype(np.uint8)  # C-PM / C-GT regions
    encoder = ClickEncoder(encoding, radius, 2)
    others = [Click(70, 75, 0), Click(80, 90, 0), Click(20, 20, 1)]
    new = Click(75, 80, 0)
    before = encoder(others, shape, image=image, prediction=maps, label=maps)
    after = encoder([*others, new], shape, image=image, prediction=maps, label=maps)
    changed = np.argwhere((before != after).any(0))
    assert len(changed)
    assert np.abs(changed - [new.row, new.col]).max() <= encoder.reach
    alone = np.argwhere(encoder([new], shape, image=image, prediction=maps, label=maps).any(0))
    assert np.abs(alone - [new.row, new.col]).max() <= encoder.reach


def test_guided_filter_is_exactly_local():
    """Far from the source's support the output is exactly 0, in float64 too (a running-sum box
    filter leaves ~1e-16 along whole rows there, so crops would not encode like the whole image)."""
    rng = np.random.default_rng(2)
    guide, source = rng.random((120, 140)), np.zeros((120, 140))
    source[30:40, 50:60] = rng.random((10, 10))
    out = guided_filter(guide, source, 3)
    support = np.argwhere(out != 0)
    assert support.min(0).tolist() >= [30 - 6, 50 - 6] and support.max(0).tolist() <= [39 + 6, 59 + 6]


def test_reach_values():
    assert ClickEncoder("dt", 10.0, 6).reach == 10
    assert ClickEncoder("binary", 1.5, 6).reach == 2
    assert ClickEncoder("cpm", 4.2, 6).reach == 5
    assert ClickEncoder("gf", 10.0, 6).reach == 10 + 2 * 5
    assert ClickEncoder("gf", 1.0, 6, "single").reach == 1 + 2 * 1


# ------------------------------------------------------------------------------------------------
# exactness
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_local_update_equals_whole_image_prediction(encoding):
    _run(_model(encoding))


def test_single_channel_and_an_empty_cache_are_exact_too():
    _run(_model("dt", annotation="single"), seed=1)
    _run(_model("gf", radius=3.0, annotation="single"), cache_bytes=0, seed=2, every_click=False)
    _run(_model("cpm"), cache_bytes=0, seed=3, every_click=False)


def test_exact_with_linknet():
    """The real network (oneDNN convolutions, batch norm, padding to 32): still bit for bit."""
    _run(_model(linknet=True))


def test_image_smaller_than_the_window_and_clicks_outside_it():
    _run(_model("cpm"), shape=(50, 90))  # two windows, rows padded; the seam clicks fall below the image


def test_removed_clicks_and_weight_changes():
    model = _model()
    image, _ = _data()
    predictor = ClickPredictor(model, image, WINDOW, OVERLAP, cache_bytes=10 * 3 * WINDOW * WINDOW * 4)
    encode = crop_encoder(model.spec.click_encoder())
    clicks = [Click(10, 10, 0), Click(150, 300, 2), Click(100, 100, 1)]
    predictor.update(clicks, encode)
    predictor.update(clicks[1:], encode)  # undo the first click
    probs, _ = predict_probs(model, image, encode(clicks[1:], (0, 0, *SHAPE)), WINDOW, OVERLAP)
    assert np.array_equal(predictor.probs, probs)
    with torch.no_grad():  # new weights (DISCA): refresh re-infers every window
        next(model.parameters()).mul_(1.1)
    assert predictor.refresh(clicks, encode) == len(predictor.windows)
    probs, _ = predict_probs(model, image, encode(clicks, (0, 0, *SHAPE)), WINDOW, OVERLAP)
    assert np.array_equal(predictor.probs, probs) and np.array_equal(predictor.prediction, probs.argmax(0))


# ------------------------------------------------------------------------------------------------
# locality
# ------------------------------------------------------------------------------------------------


def test_a_click_re_infers_only_the_windows_it_reaches(monkeypatch):
    model = _model()
    image, _ = _data()
    calls = []
    real = local_prediction.forward_windows
    monkeypatch.setattr(local_prediction, "forward_windows", lambda m, x: calls.extend([x.shape] * len(x)) or real(m, x))
    predictor = ClickPredictor(model, image, WINDOW, OVERLAP, batch=1)  # no batching check: counts the pass only
    assert len(calls) == len(predictor.windows) == 28
    encode = crop_encoder(model.spec.click_encoder())
    calls.clear()
    assert predictor.update([Click(24, 24, 1)], encode) == len(calls) == 1  # inside one window only
    calls.clear()
    assert predictor.update([Click(24, 24, 1), Click(104, 104, 2)], encode) == len(calls) == 4  # a seam crossing
    calls.clear()
    assert predictor.update([Click(24, 24, 1), Click(104, 104, 2), Click(104, 104, 2)], encode) == 0  # no change
    # with nothing cached, the neighbours are inferred on demand as well (once each)
    empty = ClickPredictor(model, image, WINDOW, OVERLAP, cache_bytes=0)
    assert empty.update([Click(24, 24, 1)], encode) == 4  # the window and the three overlapping it


def test_windows_are_batched_only_when_a_batch_is_exact(monkeypatch):
    """A batch of windows in one forward pass is used only when it gives the single passes' values bit for bit."""
    model = _model()
    image, _ = _data()
    real = local_prediction.forward_windows
    alone = lambda m, x: torch.cat([real(m, x[i : i + 1]) for i in range(len(x))])  # exact by construction
    monkeypatch.setattr(local_prediction, "forward_windows", alone)
    batched = ClickPredictor(model, image, WINDOW, OVERLAP, batch=4)
    assert batched.batch == 4 and batched.inferred == len(batched.windows)
    encode = crop_encoder(model.spec.click_encoder())
    clicks = [Click(24, 24, 1), Click(104, 104, 2)]
    batched.update(clicks, encode)
    probs, _ = predict_probs(model, image, encode(clicks, (0, 0, *SHAPE)), WINDOW, OVERLAP)
    assert np.array_equal(batched.probs, probs)
    off = lambda m, x: alone(m, x) + (1e-6 if len(x) > 1 else 0.0)  # a batch a bit off: one window at a time
    monkeypatch.setattr(local_prediction, "forward_windows", off)
    assert ClickPredictor(model, image, WINDOW, OVERLAP, batch=4).batch == 1
