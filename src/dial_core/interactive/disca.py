"""DISCA: continual adaptation of the network's weights to the user's clicks (DIAL Eq. 1).

Eq. 1: L = CE over the annotated pixels / their count + λ ‖f(x; θ) − p0‖₁, run as the authors' code
runs it (DIAL ``classic_trainer.py``): after every click, every window of the image that holds any
click is visited in raster order and gets ``steps`` plain-SGD steps on the clicks inside it; the
batch-norm layers stay in eval mode (running statistics frozen) *and* their affine parameters are
frozen (``requires_grad`` off during the steps, restored afterwards) — one image is far too small a
batch for either; at each step the annotation channels are zeroed with probability
``ac_drop_probability`` (DIAL code: 0.2 clicks / 0.5 patches; the DISCA paper never feeds them: 1.0)
so the network does not learn to copy them; the re-prediction after the steps uses them.

Deviations from the literal Eq. 1, and why:

- **L1 normalisation.** The literal ‖f − p0‖₁ is a sum over N·H·W terms: its (sign) gradient is
  ~10⁵ times the CE's and SGD diverges at any useful learning rate (measured on the demo network).
  The authors' code takes ``mean(|·|)`` over N·H·W, which divides the term by N and makes λ a
  dead knob (~1e-5 of the CE; λ = 1 and λ = 10 gave the same result). We use the *per-pixel mean of
  the class-summed L1*: ``mean_{h,w} Σ_i |f_i − p0_i|`` (the L1 distance of two probability vectors,
  in [0, 2], averaged over the window's pixels). Both terms are then per-pixel averages — CE over the
  annotated pixels, L1 over all pixels — so λ weighs one average clicked pixel against the average
  drift of one pixel, independently of the window size and the number of classes. Since the
  subgradient of |·| has unit size wherever the prediction moved, this term pulls back as hard as
  the CE pushes once the drift is widespread, and λ = 1 vs 10 change the adapted weights
  (``tests/test_disca.py``).
- **L1 on probabilities, not logits.** Eq. 1 writes f(x; θ) for the network output whose log is
  the CE's argument, i.e. the softmax; the authors' code compares logits. We follow the paper.
- **p0.** ``p0: initial`` is Eq. 1's p0 = f(x; θ0), the prediction before any click and any
  adaptation (cropped from the whole-image prediction); ``p0: current`` is what the DIAL click loop
  uses: the current network's prediction of the window with the annotation channels on, taken
  before each window's steps. Pair them with the drop probability: ``initial`` is the no-click
  prediction, so steps that *see* the annotation channels are pulled back towards ignoring them
  (the regulariser fights AC); it is coherent with channels always dropped (the DISCA paper, 1.0).
  ``current`` already contains the AC correction, so it is coherent with DIAL's 0.2 / 0.5. Measured
  on the demo network (A training images, 5 clicks, best lr of the grid): initial + 0.2 gained
  +0.44 mIoU points (AC +0.66), current + 0.2 +0.71, initial + 1.0 +0.78.
- **Learning rate.** The papers' fixed values (2e-6 DIAL, 2e-7 DISCA, 5e-6 plugin) do not transfer
  across networks and data; the workflow calibrates it per network and dataset clicked on held-out *training*
  images (:func:`dial_core.steps.calibrate_disca`). DIAL's patch loop divides it by (i + 1) at the
  i-th patch; ``patch_lr_decay: inverse`` does the same (``constant`` keeps it).

The same steps serve the ablation arms (:mod:`dial_core.interactive.methods`): λ = 0 drops the L1
term, and a ``festa`` config replaces it by FESTA's feature regulariser
(:mod:`dial_core.interactive.festa`; λ is then that term's weight), which reads the decoder features
of the window and needs no p0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from dial_core.clicks.types import Click
from dial_core.interactive.festa import FestaConfig, festa_term
from dial_core.interactive.inference import forward_window
from dial_core.models.segmenter import Segmenter

P0_CHOICES = ("initial", "current")
LR_DECAYS = ("constant", "inverse")


@dataclass(frozen=True)
class DiscaConfig:
    lr: float
    steps: int  # SGD steps per window holding a click, per click (DIAL: CL_STEPS = 10)
    regularisation: float  # λ of Eq. 1 (with ``festa``: the weight of FESTA's term instead)
    ac_drop_probability: float  # chance a step sees no annotation channels
    p0: str = "initial"  # "initial" (Eq. 1) | "current" (DIAL click loop)
    lr_decay: str = "constant"  # "inverse": the i-th adaptation (from 0) runs at lr / (i + 1) (DIAL's patch loop)
    festa: FestaConfig | None = None  # FESTA's feature regulariser instead of the L1 to p0 (the festa arm)

    def __post_init__(self) -> None:
        if self.p0 not in P0_CHOICES:
            raise ValueError(f"DISCA p0 must be one of {P0_CHOICES}, not {self.p0!r}")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"DISCA lr_decay must be one of {LR_DECAYS}, not {self.lr_decay!r}")

    def at(self, index: int) -> "DiscaConfig":
        """The config of the ``index``-th adaptation (from 0): the lr decayed as ``lr_decay`` says."""
        if self.lr_decay == "constant":
            return self
        return replace(self, lr=self.lr / (index + 1))


def l1_term(probs: torch.Tensor, p0: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean of the class-summed L1 between (N, H, W) probabilities (see the module doc)."""
    return (probs - p0).abs().sum(dim=0).mean()


def click_cross_entropy(logits: torch.Tensor, clicks: Sequence[Click]) -> torch.Tensor:
    """Cross-entropy of one (N, H, W) window on the clicked pixels / their count (every arm's point supervision)."""
    rows = torch.tensor([c.row for c in clicks], device=logits.device)
    cols = torch.tensor([c.col for c in clicks], device=logits.device)
    target = torch.tensor([c.cls for c in clicks], device=logits.device)
    return F.cross_entropy(logits[:, rows, cols].T, target, reduction="sum") / len(clicks)


def disca_loss(logits: torch.Tensor, clicks: Sequence[Click], p0: torch.Tensor, regularisation: float) -> torch.Tensor:
    """Eq. 1 on one (N, H, W) window: CE on the clicked pixels / their count + λ · L1 to p0."""
    return click_cross_entropy(logits, clicks) + regularisation * l1_term(torch.softmax(logits, dim=0), p0)


def festa_loss(logits: torch.Tensor, features: torch.Tensor, clicks: Sequence[Click], weight: float, cfg: FestaConfig,
               rng: np.random.Generator) -> torch.Tensor:
    """The festa arm on one window: CE on the clicked pixels / their count + weight · FESTA's term
    on the (C, H, W) decoder features (anchors drawn from ``rng``)."""
    return click_cross_entropy(logits, clicks) + weight * festa_term(features, rng, cfg)


class frozen_batchnorm:
    """Context: batch-norm layers in eval mode with their affine parameters frozen; restored on exit."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.saved: list[tuple[torch.nn.Parameter, bool]] = []

    def __enter__(self) -> torch.nn.Module:
        self.training = self.model.training
        self.model.eval()
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                for p in module.parameters(recurse=False):
                    self.saved.append((p, p.requires_grad))
                    p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc) -> None:
        for p, flag in self.saved:
            p.requires_grad_(flag)
        self.model.train(self.training)


def disca_adapt(
    model: Segmenter,
    x: torch.Tensor,
    clicks: Sequence[Click],
    p0: torch.Tensor | None,
    cfg: DiscaConfig,
    rng: np.random.Generator,
) -> float:
    """Run ``cfg.steps`` SGD steps on ``model`` in place for one input window ``x`` (C, H, W).

    ``clicks`` are in the window's coordinates; ``p0`` is the reference softmax of the window, or
    None for the current prediction of ``x`` with its annotation channels (``p0: current``).
    With ``cfg.festa`` the loss is :func:`festa_loss` (p0 is not read; FESTA's anchors come from
    ``rng`` after each step's drop draw). Returns the last loss.
    """
    inside = [c for c in clicks if 0 <= c.row < x.shape[1] and 0 <= c.col < x.shape[2]]
    if not inside or cfg.steps == 0:
        return 0.0
    with frozen_batchnorm(model):
        if p0 is None and cfg.festa is None:
            with torch.no_grad():
                p0 = torch.softmax(forward_window(model, x)[0], dim=0)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
        loss = torch.tensor(0.0)
        for _ in range(cfg.steps):
            inputs = x
            if rng.random() < cfg.ac_drop_probability:
                inputs = x.clone()
                inputs[3:] = 0  # every annotation channel
            logits, features = forward_window(model, inputs, with_features=cfg.festa is not None)
            if cfg.festa is not None:
                loss = festa_loss(logits, features, inside, cfg.regularisation, cfg.festa, rng)
            else:
                loss = disca_loss(logits, inside, p0, cfg.regularisation)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return float(loss.detach())
