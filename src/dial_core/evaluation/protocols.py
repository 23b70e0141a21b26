"""Simulated interactive protocols. Each returns tidy rows: one per step, scores of the whole image.

- :func:`click_protocol` — DISIR / DISCA protocol: K clicks on one image, re-prediction after each.
- :func:`patch_protocol` — DIAL's active-learning protocol: patches visited in the order of an
  acquisition function, one click per patch inside its largest mistake.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import torch

from dial_core.active.acquisition import AcquisitionConfig, acquisition as acquisition_member, entropy_map, patch_scores, random_order, uncertainty_order
from dial_core.active.uncertainty import predict_with_uncertainty
from dial_core.clicks.agents import AgentContext, needs_uncertainty, next_click
from dial_core.clicks.types import Click
from dial_core.data.tiling import tile_windows
from dial_core.evaluation.metrics import segmentation_scores
from dial_core.interactive.disca import DiscaConfig, disca_adapt
from dial_core.interactive.inference import predict_probs
from dial_core.interactive.local_prediction import DEFAULT_CACHE_BYTES, ClickPredictor
from dial_core.interactive.methods import method as interactive_method
from dial_core.models.segmenter import Segmenter, network_input


@dataclass(frozen=True)
class InteractionConfig:
    """How clicks are made and used, shared by both protocols. How clicks are *encoded* comes from
    the network itself (:meth:`NetworkSpec.click_encoder`), as it was trained to read them."""

    method: str  # a name of dial_core.interactive.methods.METHODS: ac, disca and the ablation arms
    agent: str
    disca: DiscaConfig
    window: int = 512  # inference window (the tiles.csv size)
    overlap: int = 128
    disca_window: int = 512  # side of the grid windows DISCA adapts on (each window holding a click, every click)
    agent_options: Mapping = field(default_factory=dict)  # evaluation.agent_options (see dial_core.clicks.agents)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)  # evaluation.acquisition (patch protocol)


def _row(step: int, label: np.ndarray, prediction: np.ndarray, class_names: Sequence[str], correct0: int | None, seconds: float, click: Click | None) -> dict:
    """Scores of the whole image after ``step``; ``correct0`` = correct pixels at step 0 (None at step 0)."""
    scores = segmentation_scores(label, prediction, len(class_names))
    row = {
        "step": step,
        "miou": scores["miou"],
        "accuracy": scores["accuracy"],
        "correct_pixels": scores["correct_pixels"],
        "corrected_pixels": 0 if correct0 is None else scores["correct_pixels"] - correct0,
        "seconds": seconds,
        "click_row": click.row if click else -1,
        "click_col": click.col if click else -1,
        "click_class": click.cls if click else -1,
    }
    row.update({f"iou_{name}": float(v) for name, v in zip(class_names, scores["iou"])})
    return row


def _window_around(click: Click, shape: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """The ``size``² window containing ``click``, as centred as the image borders allow."""
    h, w = min(size, shape[0]), min(size, shape[1])
    r = int(np.clip(click.row - h // 2, 0, shape[0] - h))
    c = int(np.clip(click.col - w // 2, 0, shape[1] - w))
    return r, c, h, w


@dataclass
class _Scene:
    """One image under evaluation: what context encodings (GF, C-PM, C-GT) may look at."""

    image: np.ndarray
    label: np.ndarray | None  # None: a person's clicks on an unlabelled image (dial refine; no C-GT)
    initial: np.ndarray  # prediction before any click (C-PM encodes against it)

    def channels(self, model: Segmenter, clicks: Sequence[Click], window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        r, c, h, w = window or (0, 0, *self.initial.shape)
        local = [k.shifted(r, c) for k in clicks]
        crop = (slice(r, r + h), slice(c, c + w))
        return model.spec.click_encoder()(
            local, (h, w), image=self.image[crop], prediction=self.initial[crop],
            label=None if self.label is None else self.label[crop],
        )


def disca_windows(shape: tuple[int, int], clicks: Sequence[Click], size: int) -> list[tuple[int, int, int, int]]:
    """The windows of the ``size``² grid (no overlap, the last row / column flush with the border)
    that hold at least one click, in raster order: what DISCA adapts on after each click (DIAL)."""
    return [(r, c, h, w) for r, c, h, w in tile_windows(*shape, min(size, max(shape)), 0)
            if any(r <= k.row < r + h and c <= k.col < c + w for k in clicks)]


def _adapt(model: Segmenter, scene: _Scene, clicks: list[Click], p0: np.ndarray, windows: Sequence[tuple[int, int, int, int]], cfg: InteractionConfig, rng: np.random.Generator) -> int:
    """DISCA steps on each of ``windows`` in turn, with every click inside the window (DIAL's
    ``CL_STEPS`` per window). ``p0`` is the initial softmax of the image (``p0: initial``); with
    ``p0: current`` each window's reference is its current prediction with the annotation channels.
    Returns the number of windows adapted on."""
    device = next(model.parameters()).device
    adapted = 0
    for r, c, h, w in windows:
        local = [k.shifted(r, c) for k in clicks if r <= k.row < r + h and c <= k.col < c + w]
        if not local:
            continue
        # methods without channels (WTP arms) never see them; p0 "current" is then their own prediction
        channels = scene.channels(model, clicks, (r, c, h, w)) if interactive_method(cfg.method).channels else None
        x = network_input(scene.image[r : r + h, c : c + w], channels, model.spec.n_annotation_channels).to(device)
        target = torch.from_numpy(p0[:, r : r + h, c : c + w]).to(device) if cfg.disca.p0 == "initial" else None
        with torch.enable_grad():
            disca_adapt(model, x, local, target, cfg.disca, rng)
        adapted += 1
    return adapted


def click_protocol(
    model: Segmenter,
    image: np.ndarray,
    label: np.ndarray,
    class_names: Sequence[str],
    n_clicks: int,
    cfg: InteractionConfig,
    rng: np.random.Generator,
    image_id: str = "",
    recorded: Sequence[Click] | None = None,
    keep_weights: bool = False,
) -> list[dict]:
    """K agent clicks on one image; AC re-predicts with all clicks, DISCA (and the other adapting
    methods) also adapt the weights.

    ``recorded``: a person's clicks on this image, replayed by the ``human`` agent.

    AC re-infers only the windows a click reaches (:class:`ClickPredictor`, equal to whole-image
    inference); an adapting method re-infers every window after adapting, as its weights changed, with
    the annotation channels when it reads them (not the WTP arms). Adapting methods start from the
    pretrained weights for every image (a copy), as in the papers' default; ``keep_weights`` adapts
    ``model`` itself instead, so a caller that passes the same model image after image gets DIAL's
    sequential learning (Fig. 8).
    """
    arm = interactive_method(cfg.method)
    if arm.adapts and not keep_weights:
        model = copy.deepcopy(model)
    start = time.perf_counter()
    cache = 0 if arm.adapts else DEFAULT_CACHE_BYTES  # adapting: every window stale after the steps
    predictor = ClickPredictor(model, image, cfg.window, cfg.overlap, cache)
    probs, prediction = predictor.probs, predictor.prediction  # the current softmax and argmax, updated in place
    probs0 = probs.copy() if arm.adapts else probs  # DISCA's p0: the softmax before any click
    scene = _Scene(image, label, prediction.copy())
    encode = partial(scene.channels, model)
    rows = [_row(0, label, prediction, class_names, None, time.perf_counter() - start, None)]
    correct0 = rows[0]["correct_pixels"]
    clicks: list[Click] = []
    agent_rng, memory = rng.spawn(1)[0], {}  # the user's own stream (rng's draws stay DISCA's); memory: one image
    for step in range(1, n_clicks + 1):
        start = time.perf_counter()
        click = next_click(cfg.agent, AgentContext(
            label, prediction, tuple(clicks), agent_rng, _agent_uncertainty(cfg, probs),
            image_id=image_id, options=cfg.agent_options, step=step, budget=n_clicks, n_classes=len(class_names),
            recorded=recorded, memory=memory))
        if click is not None:
            clicks.append(click)
            if arm.adapts:
                _adapt(model, scene, clicks, probs0, disca_windows(label.shape, clicks, cfg.disca_window), cfg, rng)
                predictor.refresh(clicks if arm.channels else [], encode)
            else:
                predictor.update(clicks, encode)
        rows.append(_row(step, label, prediction, class_names, correct0, time.perf_counter() - start, click))
    return rows


def _agent_uncertainty(cfg: InteractionConfig, probs: np.ndarray, acquisition_map: np.ndarray | None = None,
                       window: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """The uncertainty map the uncertainty-based users read (None for the others, nothing computed):
    the acquisition's current map when the protocol has one, else the entropy of ``probs``."""
    if not needs_uncertainty(cfg.agent, cfg.agent_options):
        return None
    r, c, h, w = window or (0, 0, *probs.shape[1:])
    if acquisition_map is not None:
        return acquisition_map[r : r + h, c : c + w]
    return entropy_map(probs[:, r : r + h, c : c + w])


def _repredict_patch(model: Segmenter, scene: _Scene, clicks: list[Click], patch: tuple[int, int, int, int], prediction: np.ndarray, cfg: InteractionConfig) -> None:
    """AC on one patch: predict the inference window centred on it (context, as in whole-image
    inference) with the clicks inside that window, and replace the prediction on the patch only."""
    r, c, h, w = patch
    centre = Click(r + h // 2, c + w // 2, 0)
    context = _window_around(centre, prediction.shape, max(cfg.window, h, w))
    cr, cc, ch, cw = context
    channels = scene.channels(model, clicks, context)
    probs, _ = predict_probs(model, scene.image[cr : cr + ch, cc : cc + cw], channels, cfg.window, cfg.overlap)
    prediction[r : r + h, c : c + w] = probs[:, r - cr : r - cr + h, c - cc : c - cc + w].argmax(0)


def patch_protocol(
    model: Segmenter,
    image: np.ndarray,
    label: np.ndarray,
    class_names: Sequence[str],
    patch_size: int,
    acquisition: str,
    cfg: InteractionConfig,
    rng: np.random.Generator,
    confidnet: torch.nn.Module | None = None,
    max_patches: int | None = None,
    image_id: str = "",
    recorded: Sequence[Click] | None = None,
) -> list[dict]:
    """DIAL patch protocol on one image: rows after 0, 1, 2 … annotated patches.

    AC keeps the initial order and re-predicts the annotated patch (with its context). DISCA (and the
    other adapting methods) adapt on the patch, then recompute the whole prediction and uncertainty
    and re-rank the patches left.
    """
    if acquisition_member(acquisition).needs == "confidnet" and confidnet is None:
        raise ValueError("the confidnet acquisition needs a trained ConfidNet")
    arm = interactive_method(cfg.method)
    if arm.adapts:
        model = copy.deepcopy(model)
    agent_rng, mc_rng = rng.spawn(2)  # the user's and the MC masks' own streams: rng's draws (order, DISCA) stay as they were

    def predict(channels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        return predict_with_uncertainty(model, image, channels, acquisition, cfg.window, cfg.overlap, cfg.acquisition,
                                        confidnet, seed=int(mc_rng.integers(2**31)))

    start = time.perf_counter()
    probs0, uncertainty = predict(None)
    prediction = probs0.argmax(0)
    scene = _Scene(image, label, prediction.copy())
    windows = tile_windows(*label.shape, patch_size, 0)
    order = random_order(len(windows), rng) if uncertainty is None else uncertainty_order(patch_scores(uncertainty, windows))
    rows = [_row(0, label, prediction, class_names, None, time.perf_counter() - start, None)]
    rows[0]["patch"] = -1
    correct0 = rows[0]["correct_pixels"]
    clicks: list[Click] = []
    visited: set[int] = set()
    budget = len(windows) if max_patches is None else min(max_patches, len(windows))
    for step in range(1, budget + 1):
        start = time.perf_counter()
        index = order.pop(0)
        visited.add(index)
        r, c, h, w = windows[index]
        local = next_click(cfg.agent, AgentContext(  # the patch only, in its own coordinates; a fresh memory
            label[r : r + h, c : c + w], prediction[r : r + h, c : c + w], tuple(k.shifted(r, c) for k in clicks),
            agent_rng, _agent_uncertainty(cfg, probs0, uncertainty, (r, c, h, w)), image_id=image_id,
            options=cfg.agent_options, step=step, budget=budget, n_classes=len(class_names), recorded=recorded,
            window=(r, c, h, w)))
        click = local.shifted(-r, -c) if local is not None else None
        if click is not None:
            clicks.append(click)
            if not arm.adapts:
                _repredict_patch(model, scene, clicks, windows[index], prediction, cfg)
            else:
                at = replace(cfg, disca=cfg.disca.at(len(clicks) - 1))  # DIAL's patch loop: lr / (i + 1)
                _adapt(model, scene, clicks, probs0, [windows[index]], at, rng)  # DIAL Fig. 4: the annotated patch
                channels = scene.channels(model, clicks) if arm.channels else None
                probs, uncertainty = predict(channels)
                prediction = probs.argmax(0)
                if uncertainty is not None:
                    order = uncertainty_order(patch_scores(uncertainty, windows), frozenset(visited))
        row = _row(step, label, prediction, class_names, correct0, time.perf_counter() - start, click)
        row["patch"] = index
        rows.append(row)
    return rows
