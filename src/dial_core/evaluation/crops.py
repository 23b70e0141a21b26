"""DIAL's one-annotation-per-crop protocol (§III-E, Fig. 9; Appendix B, Figs. 11-12).

Many crops are sampled from the test images; each is predicted alone, a simulated user places ONE
click on it, and every method re-predicts the crop with that same click: AC with the annotation
channels, DISCA (and the other adapting arms) after adapting the weights on the crop. The methods
see the same crop, the same initial prediction and the same click, so their gains are paired.

Scores are :func:`~dial_core.evaluation.metrics.segmentation_scores` on the crop: mIoU is the mean
IoU over the classes present in the crop's ground truth *or* in the prediction (a class absent from
both has no IoU and is left out, not counted as 1 or 0). On a small crop this set is small (often
two or three classes), and a re-prediction that makes a class appear which the crop does not hold
adds a zero to the mean: the gain then drops even if fewer pixels are wrong. That is the behaviour
of every other table here and of the papers' per-image mIoU.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy import ndimage

from dial_core.active.acquisition import entropy_map
from dial_core.clicks.agents import AgentContext, mistake_mask, needs_uncertainty, next_click
from dial_core.clicks.types import Click
from dial_core.evaluation.metrics import segmentation_scores
from dial_core.evaluation.protocols import InteractionConfig, _adapt, _Scene
from dial_core.interactive.inference import predict_probs
from dial_core.interactive.methods import method as interactive_method
from dial_core.models.segmenter import Segmenter

_EIGHT = np.ones((3, 3), bool)


def crop_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """The crop actually taken from an image of ``shape``: ``size`` clipped per side, as the
    training crops are (an image narrower than ``size`` gives a narrower crop, not a padded one)."""
    return min(size, int(shape[0])), min(size, int(shape[1]))


def sample_crops(shapes: Mapping[str, tuple[int, int]], n: int, size: int, rng: np.random.Generator) -> list[tuple[str, int, int]]:
    """``n`` crops (image id, row, col) of side ``size`` (clipped per side, :func:`crop_shape`).

    The image is drawn with probability proportional to its area, then the position uniformly: the
    crops then cover the dataset's area evenly, so a small image is not over-sampled (drawing images
    uniformly would give each of its pixels more weight). With equal-sized tiles (Potsdam, INRIA)
    both rules are the same. Same ``rng`` state, same crops.
    """
    if n < 0 or size < 1:
        raise ValueError(f"sample_crops: need n >= 0 and size >= 1, not n={n}, size={size}")
    if not shapes:
        raise ValueError("sample_crops: no images to sample crops from")
    ids = list(shapes)
    area = np.array([int(shapes[i][0]) * int(shapes[i][1]) for i in ids], np.float64)
    empty = [i for i, a in zip(ids, area) if a <= 0]
    if empty:
        raise ValueError(f"sample_crops: image {empty[0]} has shape {shapes[empty[0]]}; no crop fits it")
    picks = rng.choice(len(ids), size=n, p=area / area.sum())
    crops = []
    for index in picks:
        image_id = ids[int(index)]
        height, width = shapes[image_id]
        h, w = crop_shape((height, width), size)
        crops.append((image_id, int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1))))
    return crops


def mistake_size(label: np.ndarray, prediction: np.ndarray, click: Click, ignore_index: int = 255) -> int:
    """Pixels of the error region the click lies in: the 8-connected component of the mistake mask
    (prediction ≠ label, ignore pixels excluded) holding the click; 0 when the click is on a correct
    or ignored pixel. DIAL's "spatial size of the corrected mistake" (the error polygon the
    annotation is sampled in). The mask is not split by class: a run of wrong pixels is one mistake
    to the eye, whatever the true classes under it."""
    errors = mistake_mask(label, prediction, ignore_index)
    if not errors[click.row, click.col]:
        return 0
    components, _ = ndimage.label(errors, structure=_EIGHT)
    return int((components == components[click.row, click.col]).sum())


def _predict(model: Segmenter, image: np.ndarray, channels: np.ndarray | None) -> np.ndarray:
    """Softmax of the crop as one window (DIAL predicts each crop alone, without context)."""
    return predict_probs(model, image, channels, max(image.shape[:2]), 0)[0]


def _scores(label: np.ndarray, prediction: np.ndarray, class_names: Sequence[str], suffix: str) -> dict:
    scores = segmentation_scores(label, prediction, len(class_names))
    row = {f"miou{suffix}": scores["miou"], f"accuracy{suffix}": scores["accuracy"]}
    row.update({f"iou{suffix}_{name}": float(v) for name, v in zip(class_names, scores["iou"])})
    return row


def crop_protocol(
    model: Segmenter,
    image_crop: np.ndarray,
    label_crop: np.ndarray,
    class_names: Sequence[str],
    agent: str,
    methods: Mapping[str, InteractionConfig],
    rng: np.random.Generator,
    agent_options: Mapping | None = None,
    pretrained: Mapping[str, torch.Tensor] | None = None,
    image_id: str = "",
    ignore_index: int = 255,
) -> list[dict]:
    """One click on one crop, then each method's re-prediction; one row per method.

    ``methods``: name → its config (``cfg.disca`` for the adapting ones; the inference window is
    the crop). ``agent_options``: the user's options (default: the first config's). ``pretrained``:
    a copy of ``model``'s state dict taken once by the caller; an adapting method adapts ``model``
    in place and the copy is loaded back afterwards (cheaper than a deep copy per crop). Without it
    one copy is taken here. ``model`` ends with the weights it started with.

    Every adapting method draws the same annotation-channel drops (one stream, restarted per
    method), so the methods differ only in what they are.
    """
    if not methods:
        raise ValueError("crop_protocol: no methods")
    options = dict(next(iter(methods.values())).agent_options if agent_options is None else agent_options)
    agent_rng = rng.spawn(1)[0]
    disca_seed = int(rng.integers(2**63))
    h, w = label_crop.shape
    start = time.perf_counter()
    probs0 = _predict(model, image_crop, None)
    prediction0 = probs0.argmax(0)
    uncertainty = entropy_map(probs0) if needs_uncertainty(agent, options) else None
    click = next_click(agent, AgentContext(label_crop, prediction0, (), agent_rng, uncertainty, ignore_index=ignore_index,
                                           image_id=image_id, options=options, step=1, budget=1,
                                           n_classes=len(class_names), memory={}))
    seconds0 = time.perf_counter() - start
    before = _scores(label_crop, prediction0, class_names, "0")
    size = mistake_size(label_crop, prediction0, click, ignore_index) if click is not None else 0
    common = {
        "agent": agent, "height": h, "width": w, "clicked": click is not None,
        "click_row": click.row if click else -1, "click_col": click.col if click else -1,
        "click_class": click.cls if click else -1, "click_on_mistake": size > 0,
        "mistake_size": size, "mistake_share": size / (h * w), "seconds_initial": seconds0,
    }
    scene = _Scene(image_crop, label_crop, prediction0.copy())
    rows = []
    for name, cfg in methods.items():
        began = time.perf_counter()
        prediction = prediction0 if click is None else _method_prediction(model, scene, click, probs0, cfg, disca_seed, pretrained)
        after = _scores(label_crop, prediction, class_names, "1")
        gain = after["miou1"] - before["miou0"] if click is not None else 0.0  # nothing to click: unchanged (NaN-free)
        rows.append({"method": name, **common, **before, **after, "gain": gain, "seconds": time.perf_counter() - began})
    return rows


def _method_prediction(model: Segmenter, scene: _Scene, click: Click, probs0: np.ndarray, cfg: InteractionConfig,
                       disca_seed: int, pretrained: Mapping[str, torch.Tensor] | None) -> np.ndarray:
    """The crop's prediction after ``cfg.method`` used ``click``: AC re-predicts with the annotation
    channels; an adapting method first adapts on the crop (one window, DIAL Fig. 9), then
    re-predicts (with the channels when it reads them) and gets its pretrained weights back."""
    arm = interactive_method(cfg.method)
    clicks = [click]
    if not arm.adapts:
        return _predict(model, scene.image, scene.channels(model, clicks)).argmax(0)
    saved = pretrained if pretrained is not None else {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        _adapt(model, scene, clicks, probs0, [(0, 0, *scene.label.shape)], cfg, np.random.default_rng(disca_seed))
        channels = scene.channels(model, clicks) if arm.channels else None
        return _predict(model, scene.image, channels).argmax(0)
    finally:
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
