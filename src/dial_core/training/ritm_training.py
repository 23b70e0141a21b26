"""RITM's iterative training with mask guidance, for binary (building / background) crops.

Follows SamsungLabs/ritm_interactive_segmentation (``isegm/engine/trainer.py``,
``isegm/data/points_sampler.py``, ``models/iter_mask/hrnet18_cocolvis_itermask_3p.py``): random
initial points, then 0..3 iterative clicks placed on the network's own errors, each pass feeding its
prediction back as the previous mask; loss = normalized focal loss + 0.4 × auxiliary BCE; Adam
5e-4 with the backbone at 0.1 × that rate.

**Object.** RITM trains on one instance (sometimes two merged); here the object is every
building pixel of the crop (label 1), as the ``ritm`` evaluation clicker sees it. Crops without a
building get no positive point (the report: "it corresponds to the user doing no clicks").

**Initial points** (:func:`initial_clicks`, RITM's MultiPointSampler simplified):

- counts: positives k ∈ 1..max with p(k) ∝ γ^k, negatives k ∈ 0..max with p(k) ∝ γ^k
  (γ = ``prob_gamma`` 0.8, max = 24), as RITM's ``generate_probs``;
- positives: uniform on the object with ``positive_erode`` (3) pixels peeled off, with probability
  ``positive_erode_prob`` (0.9); the whole object when that leaves ≤ 10 pixels or otherwise. RITM
  erodes with a 3×3 kernel (3 iterations, chessboard distance, crop border not a boundary); we
  threshold the Euclidean depth (crop border a boundary, as the clicker);
- negatives: each point, with probability ``near_negative_prob`` (0.5), from the background band
  within ``ceil(0.1·√area)`` pixels (chessboard) of the object — RITM's ``border`` mask,
  ``expand_ratio`` 0.1 — else from any background pixel (RITM's ``bg`` 0.1 plus ``other`` 0.4,
  which falls back to ``bg`` when, as here, no other object exists). An empty source falls back to
  the other one (RITM drops the point). Ignored pixels (255) are never clicked.
- points are drawn with replacement as in RITM; a repeated pixel is kept once. RITM's object
  merging, hierarchy and first-click-at-centre options are not used (the 3p config leaves the
  latter off).

**Iterative clicks** (:func:`iterative_clicks`): per batch, ``n`` ~ U{0..max_num_next_clicks}.
Maps are [positive disks, negative disks, previous mask] (radius 5). With ``maps_0`` = initial
disks + an all-zero previous mask (RITM's first iteration), step t = 1..n runs the network in eval
mode without gradient on ``maps_{t-1}``, sets ``prev_t = sigmoid(logits) > 0.49`` and adds one
click per sample on the errors of ``prev_t`` (the ``ritm`` agent: deepest point of the deeper of
FN / FP, pixels already clicked excluded); ``maps_t`` = disks of all clicks so far + ``prev_t``.
The training forward uses ``maps_n``: its previous-mask channel is the prediction that the last
click corrects, as at inference where a user clicks on the mask shown and the network gets that
mask with the new click. ``n = 0``: initial disks and an all-zero previous mask.
Two switches keep RITM's own choices available: ``binary_prev_mask=False`` feeds the sigmoid
probability (RITM's trainer and predictor feed probabilities), and ``next_click="inner"`` draws the
click at random where the error's depth exceeds half the deepest error, with no exclusion of
clicked pixels (RITM's trainer ``get_next_points``; its evaluation clicker is the ``deepest``
default).

**Not interactive** (``interactive=False``): maps are always zero — no clicks, no previous mask —
the same network trained without click inputs (the report's "Not interactive" baseline).

Determinism: every draw comes from a numpy generator seeded by (seed, epoch, index) as in
:mod:`dial_core.training.crops` (the batch's iteration count and ``inner`` clicks from tagged
variants), so the same seed gives the same crops, points and clicks. Checkpoints and resume are left
out: a run is one call of :func:`train_ritm` (the caller saves the returned model).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dial_core.clicks.agents.base import AgentContext, depth_map
from dial_core.clicks.agents.ritm import check_binary
from dial_core.clicks.agents.ritm import ritm as ritm_clicker
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError, TrainingError
from dial_core.models.ritm import MAP_CHANNELS, click_maps
from dial_core.models.segmenter import network_input
from dial_core.training.crops import CropSource, flip, random_crop
from dial_core.training.pretrain import DIVERGENCE_FACTOR, DivergenceGuard
from dial_core.training.ritm_loss import ritm_loss

_log = logging.getLogger(__name__)

NEXT_CLICKS = ("deepest", "inner")
_ITERS_TAG, _CLICK_TAG = 2, 1  # generator tags: a batch's iteration count, a sample's "inner" clicks


@dataclass(frozen=True)
class RitmTrainConfig:
    """RITM's training settings (hrnet18_cocolvis_itermask_3p defaults unless said otherwise)."""

    epochs: int = 230
    crops_per_epoch: int = 30_000  # RITM's epoch_len
    crop_size: int = 320  # RITM 320×480; square here
    batch_size: int = 8  # RITM 28
    lr: float = 5e-4
    backbone_lr_mult: float = 0.1  # model.net.encoder
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    milestones: tuple[int, ...] = ()  # RITM: (200, 220) of 230 epochs
    lr_gamma: float = 0.1
    interactive: bool = True
    max_initial_points: int = 24
    prob_gamma: float = 0.8
    positive_erode: int = 3
    positive_erode_prob: float = 0.9
    near_negative_prob: float = 0.5
    negative_band_ratio: float = 0.1
    click_radius: float = 5.0
    max_num_next_clicks: int = 3
    next_click: str = "deepest"
    binary_prev_mask: bool = True
    threshold: float = 0.49
    aux_weight: float = 0.4
    focal_alpha: float = 0.5
    focal_gamma: float = 2.0
    workers: int = 0
    divergence_factor: float = DIVERGENCE_FACTOR

    def __post_init__(self) -> None:
        if self.next_click not in NEXT_CLICKS:
            raise ConfigError(f"ritm next_click {self.next_click!r}: choose one of {', '.join(NEXT_CLICKS)}")
        if self.max_initial_points < 1 or self.max_num_next_clicks < 0:
            raise ConfigError("ritm max_initial_points must be ≥ 1 and max_num_next_clicks ≥ 0")


# --------------------------------------------------------------------------------------------
# initial points
# --------------------------------------------------------------------------------------------


def decaying_probs(n: int, gamma: float) -> np.ndarray:
    """p(i) ∝ gamma^i for i = 0..n-1 (RITM's ``generate_probs``): few points are the common case."""
    p = gamma ** np.arange(n, dtype=np.float64)
    return p / p.sum()


def _pick(mask: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    flat = np.flatnonzero(mask)
    if flat.size == 0 or n <= 0:
        return []
    rows, cols = np.unravel_index(flat[rng.integers(flat.size, size=n)], mask.shape)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


def initial_clicks(label: np.ndarray, rng: np.random.Generator, cfg: RitmTrainConfig, ignore_index: int = 255) -> list[Click]:
    """Random positive and negative points of one crop (rules in the module docstring); cls 1 / 0."""
    m = cfg.max_initial_points
    n_pos = 1 + int(rng.choice(m, p=decaying_probs(m, cfg.prob_gamma)))
    n_neg = int(rng.choice(m + 1, p=decaying_probs(m + 1, cfg.prob_gamma)))
    obj, background = label == 1, label == 0
    area = int(obj.sum())
    positive_area = obj
    if area and rng.random() < cfg.positive_erode_prob:
        eroded = depth_map(obj) > cfg.positive_erode
        if eroded.sum() > 10:  # RITM keeps the whole object when erosion leaves ≤ 10 pixels
            positive_area = eroded
    positives = _pick(positive_area, n_pos, rng)
    band = np.zeros_like(background)
    if area:
        reach = math.ceil(cfg.negative_band_ratio * math.sqrt(area))
        band = background & (ndimage.distance_transform_cdt(~obj, metric="chessboard") <= reach)
    negatives: list[tuple[int, int]] = []
    has_band = bool(band.any())
    for near in rng.random(n_neg) < cfg.near_negative_prob:
        negatives += _pick(band if near and has_band else background, 1, rng)
    clicks = [Click(r, c, 1) for r, c in positives] + [Click(r, c, 0) for r, c in negatives]
    return list(dict.fromkeys(clicks))  # repeated pixels once, order kept


# --------------------------------------------------------------------------------------------
# maps and iterative clicks
# --------------------------------------------------------------------------------------------


def ritm_maps(clicks: Sequence[Sequence[Click]], prev_mask: torch.Tensor | None, shape: tuple[int, int], radius: float = 5.0,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 3, H, W): positive disks, negative disks, previous mask (zeros when ``prev_mask`` is None)."""
    disks = np.stack([click_maps([(c.row, c.col, c.cls == 1) for c in cl], shape, radius) for cl in clicks])
    maps = torch.from_numpy(disks).to(device)
    prev = torch.zeros(len(clicks), 1, *shape, device=device) if prev_mask is None else prev_mask.to(device, torch.float32)
    return torch.cat([maps, prev.reshape(len(clicks), 1, *shape)], dim=1)


def inner_error_click(label: np.ndarray, prediction: np.ndarray, rng: np.random.Generator, ignore_index: int = 255) -> Click | None:
    """RITM trainer's ``get_next_points``: a random pixel where the deeper error's depth > half its max."""
    gt, pred = label == 1, prediction == 1
    fn = depth_map(gt & ~pred)
    fp = depth_map((label != 1) & (label != ignore_index) & pred)
    fn_max, fp_max = float(fn.max(initial=0.0)), float(fp.max(initial=0.0))
    if max(fn_max, fp_max) <= 0:
        return None
    positive = fn_max > fp_max
    depth = fn if positive else fp
    (row, col), = _pick(depth > max(fn_max, fp_max) / 2.0, 1, rng)
    return Click(row, col, int(positive))


def iterative_clicks(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    clicks: Sequence[Sequence[Click]],
    n_iters: int,
    radius: float = 5.0,
    threshold: float = 0.49,
    binary_prev_mask: bool = True,
    next_click: str = "deepest",
    rngs: Sequence[np.random.Generator] | None = None,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, list[list[Click]]]:
    """``n_iters`` rounds of predict → click on the errors; returns (maps for the training forward, clicks).

    Each round runs ``model(images, maps)`` in eval mode without gradient (train mode is restored
    after), takes ``prev = sigmoid(logits) > threshold`` (or the probability when
    ``binary_prev_mask`` is False) as the new previous mask and adds at most one click per sample
    (none when the sample has no error left). ``rngs``: one generator per sample, needed by ``inner``.
    """
    shape = tuple(images.shape[-2:])
    clicks = [list(c) for c in clicks]
    maps = ritm_maps(clicks, None, shape, radius, images.device)
    if n_iters <= 0:
        return maps, clicks
    label_np = labels.reshape(len(clicks), *shape).cpu().numpy().astype(np.uint8)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for _ in range(n_iters):
                prob = torch.sigmoid(model(images, maps)[0].float())
                pred = prob > threshold
                pred_np = pred.reshape(len(clicks), *shape).cpu().numpy().astype(np.uint8)
                for b, label in enumerate(label_np):
                    if next_click == "inner":
                        if rngs is None:
                            raise ValueError("next_click='inner' draws at random: give one generator per sample")
                        click = inner_error_click(label, pred_np[b], rngs[b], ignore_index)
                    else:
                        click = ritm_clicker(AgentContext(label=label, prediction=pred_np[b], clicks=clicks[b], ignore_index=ignore_index))
                    if click is not None:
                        clicks[b].append(click)
                maps = ritm_maps(clicks, pred if binary_prev_mask else prob, shape, radius, images.device)
    finally:
        model.train(was_training)
    return maps, clicks


# --------------------------------------------------------------------------------------------
# crops and batches
# --------------------------------------------------------------------------------------------


class RitmCropDataset(Dataset):
    """One epoch of random flipped crops with their initial points: (image, label, clicks, index)."""

    def __init__(self, source: CropSource, cfg: RitmTrainConfig, seed: int, epoch: int):
        self.source, self.cfg, self.seed, self.epoch = source, cfg, seed, epoch

    def __len__(self) -> int:
        return self.cfg.crops_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, list[Click], int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, label = flip(*random_crop(self.source, self.cfg.crop_size, rng), rng)
        image, label = np.ascontiguousarray(image), np.ascontiguousarray(label)
        check_binary(label, who="RITM training")
        clicks = initial_clicks(label, rng, self.cfg) if self.cfg.interactive else []
        return network_input(image, None, 0), torch.from_numpy(label).long(), clicks, index


def collate(items: list) -> tuple[torch.Tensor, torch.Tensor, list[list[Click]], list[int]]:
    """Stack images and labels; clicks stay per-sample lists (their number varies)."""
    images, labels, clicks, indices = zip(*items)
    return torch.stack(images), torch.stack(labels), list(clicks), list(indices)


def training_maps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, clicks: Sequence[Sequence[Click]],
                  indices: Sequence[int], cfg: RitmTrainConfig, seed: int, epoch: int) -> tuple[torch.Tensor, int]:
    """Maps of a batch's training forward and its number of iterative rounds (zeros, 0: not interactive)."""
    shape = tuple(images.shape[-2:])
    if not cfg.interactive:
        return torch.zeros(len(images), MAP_CHANNELS, *shape, device=images.device), 0
    n_iters = int(np.random.default_rng([seed, epoch, indices[0], _ITERS_TAG]).integers(0, cfg.max_num_next_clicks + 1))
    rngs = [np.random.default_rng([seed, epoch, int(i), _CLICK_TAG]) for i in indices]
    maps, _ = iterative_clicks(model, images, labels, clicks, n_iters, cfg.click_radius, cfg.threshold,
                               cfg.binary_prev_mask, cfg.next_click, rngs)
    return maps, n_iters


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def ritm_optimiser(model: nn.Module, cfg: RitmTrainConfig) -> torch.optim.Adam:
    """Adam with two groups: the backbone (``model.net.encoder``) at lr × backbone_lr_mult, the rest
    (decoder, heads, ``maps_transform``) at lr — RITM's ``backbone_lr_mult`` 0.1."""
    encoder = getattr(getattr(model, "net", None), "encoder", None)
    if encoder is None:
        raise ConfigError(f"RITM training needs a RITMNet-like model with net.encoder; got {type(model).__name__}")
    backbone = list(encoder.parameters())
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam(
        [{"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult}, {"params": rest, "lr": cfg.lr}],
        lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
    )


def train_ritm(
    model: nn.Module,
    source: CropSource,
    cfg: RitmTrainConfig,
    device: torch.device,
    seed: int,
    init_state: dict | None = None,
    log: Callable[[str], None] = _log.info,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train ``model`` (from ``init_state`` when given: the report's "Finetuning"); returns it in eval
    mode and one history row per epoch (epoch, mean loss, lr, mean iterative rounds per batch).

    Model initialisation is the caller's; each epoch re-seeds torch from (seed, epoch). A NaN or
    exploded loss raises :class:`TrainingError` before the step that would apply it.
    """
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(device)
    opt = ritm_optimiser(model, cfg)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.lr_gamma)
    guard = DivergenceGuard(cfg.divergence_factor, "RITM loss", "lower ritm.lr or check the labels")
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        torch.manual_seed(seed * 100_003 + epoch)
        crops = RitmCropDataset(source, cfg, seed, epoch)
        loader = DataLoader(crops, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers, collate_fn=collate,
                            pin_memory=device.type == "cuda", drop_last=len(crops) > cfg.batch_size)
        model.train()
        total, count, rounds, batches = 0.0, 0, 0, 0
        for images, labels, clicks, indices in tqdm(loader, desc=f"ritm epoch {epoch + 1}", leave=False, mininterval=5):
            if bool((labels == 255).all()):
                continue  # nothing labelled: no gradient to take
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            maps, n_iters = training_maps(model, images, labels, clicks, indices, cfg, seed, epoch)
            logits, aux = model(images, maps)
            loss = ritm_loss(logits, aux, labels, cfg.aux_weight, cfg.focal_alpha, cfg.focal_gamma)
            value = float(loss.detach())
            guard.check(value, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + value * len(images), count + len(images)
            rounds, batches = rounds + n_iters, batches + 1
        mean = total / max(count, 1)
        if not math.isfinite(mean):
            raise TrainingError(f"mean RITM loss of epoch {epoch + 1} is {mean}; lower ritm.lr")
        guard.end_epoch(mean)
        lr = opt.param_groups[1]["lr"]
        sched.step()
        history.append({"epoch": epoch + 1, "loss": mean, "lr": lr, "iterative_clicks": rounds / max(batches, 1)})
        log(f"ritm epoch {epoch + 1}/{cfg.epochs} loss {mean:.4f} lr {lr:.2e}")
    return model.eval(), history
