"""DISCA: continual adaptation of the network's weights to the user's clicks (DIAL Eq. 1).

Loss = cross-entropy on the annotated pixels / their count + λ · mean |softmax − p0|, where p0 is
the prediction before any adaptation. The annotation channels are zeroed at random during the
steps so the network does not learn to copy them, and batch-norm statistics stay frozen (eval mode)
since one image is far too small a batch to estimate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dial_core.clicks.types import Click
from dial_core.interactive.inference import forward_window
from dial_core.models.segmenter import Segmenter


@dataclass(frozen=True)
class DiscaConfig:
    lr: float
    steps: int
    regularisation: float  # λ of Eq. 1
    ac_drop_probability: float


def disca_loss(logits: torch.Tensor, clicks: Sequence[Click], p0: torch.Tensor, regularisation: float) -> torch.Tensor:
    """Eq. 1 on one (N, H, W) window: sparse CE on clicked pixels + λ · L1 to the initial softmax."""
    rows = torch.tensor([c.row for c in clicks], device=logits.device)
    cols = torch.tensor([c.col for c in clicks], device=logits.device)
    target = torch.tensor([c.cls for c in clicks], device=logits.device)
    ce = F.cross_entropy(logits[:, rows, cols].T, target, reduction="sum") / len(clicks)
    reg = (torch.softmax(logits, dim=0) - p0).abs().mean()
    return ce + regularisation * reg


def disca_adapt(
    model: Segmenter,
    x: torch.Tensor,
    clicks: Sequence[Click],
    p0: torch.Tensor,
    cfg: DiscaConfig,
    rng: np.random.Generator,
) -> float:
    """Run ``cfg.steps`` SGD steps on ``model`` in place for input window ``x`` (C, H, W).

    ``clicks`` are in the window's coordinates; ``p0`` is the initial softmax of the window.
    Returns the last loss.
    """
    inside = [c for c in clicks if 0 <= c.row < x.shape[1] and 0 <= c.col < x.shape[2]]
    if not inside or cfg.steps == 0:
        return 0.0
    model.eval()  # frozen batch-norm statistics
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    loss = torch.tensor(0.0)
    for _ in range(cfg.steps):
        inputs = x
        if rng.random() < cfg.ac_drop_probability:
            inputs = x.clone()
            inputs[3:] = 0  # every annotation channel
        logits, _ = forward_window(model, inputs)
        loss = disca_loss(logits, inside, p0, cfg.regularisation)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())
