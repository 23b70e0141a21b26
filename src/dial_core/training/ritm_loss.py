"""RITM's training loss: normalized focal loss on the main output + 0.4 × BCE on the auxiliary one.

Follows ``NormalizedFocalLossSigmoid`` and ``SigmoidBinaryCrossEntropyLoss`` of RITM
(SamsungLabs/ritm_interactive_segmentation, isegm/model/losses.py) as configured in
models/iter_mask/hrnet18_cocolvis_itermask_3p.py (α 0.5, γ 2, auxiliary weight 0.4).

Choices, each matching RITM unless said otherwise:

- Per sample (over H×W), ``mult = n_valid / (Σ_valid β + eps)`` with ``β = (1 − pt)^γ``; it is
  detached (RITM's ``detach_delimeter=True``), so it rescales the focal weights to sum to
  ``n_valid`` without itself being differentiated. This undoes the focal loss's fading total gradient.
- ``size_average=True``: each sample's summed loss is divided by its own valid-pixel count
  (``+ eps``), then RITM's trainer takes the batch mean. Net effect: a β-weighted mean of
  ``−α_t·log pt`` per sample, and an image with many ignored pixels weighs as much as any other.
- Ignored pixels have ``pt = 1`` (so ``β = 0``) and weight 0: they take no part in Σβ, the count,
  or the loss. A sample with no valid pixel contributes 0.
- ``log(min(pt + eps, 1))`` on sigmoid probabilities, as RITM: saturated pixels are capped at
  ``−log eps`` rather than computed with log-sigmoid. RITM's ``eps`` is 1e-12; we default to 1e-8.
- Positives are ``target == 1`` (RITM: ``label > 0.5``; the same for 0/1 labels); ignore is 255
  (RITM: −1).
- BCE deviation: RITM's auxiliary BCE is the mean over *all* pixels with ignored ones counted as
  0; ours divides by the valid-pixel count instead, so ignored pixels are fully excluded (identical
  when nothing is ignored, which is the common case).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _valid_positive(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid, positive) boolean masks shaped like ``logits``; target may be (B,H,W) or (B,1,H,W)."""
    target = target.reshape(logits.shape)
    valid = target != ignore_index
    return valid, valid & (target == 1)


def normalized_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.5,
    gamma: float = 2.0,
    ignore_index: int = 255,
    eps: float = 1e-8,
) -> torch.Tensor:
    """RITM's NormalizedFocalLossSigmoid, batch-averaged: scalar loss of (B,1,H,W) logits."""
    valid, positive = _valid_positive(logits, target, ignore_index)
    weight = valid.to(logits.dtype)
    p = torch.sigmoid(logits)
    pt = torch.where(valid, torch.where(positive, p, 1 - p), torch.ones_like(p))
    alpha_t = torch.where(positive, alpha, 1 - alpha) * weight
    beta = (1 - pt) ** gamma
    dims = tuple(range(1, logits.dim()))
    n_valid = weight.sum(dim=dims, keepdim=True)
    mult = (n_valid / (beta.sum(dim=dims, keepdim=True) + eps)).detach()
    loss = -alpha_t * beta * mult * torch.log(torch.clamp(pt + eps, max=1.0)) * weight
    return (loss.sum(dim=dims) / (n_valid.reshape(-1) + eps)).mean()


def sigmoid_bce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Binary cross-entropy on logits, per-sample mean over valid pixels, then the batch mean."""
    valid, positive = _valid_positive(logits, target, ignore_index)
    weight = valid.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, positive.to(logits.dtype), reduction="none") * weight
    dims = tuple(range(1, logits.dim()))
    return (loss.sum(dim=dims) / weight.sum(dim=dims).clamp(min=1)).mean()


def ritm_loss(
    logits: torch.Tensor,
    aux_logits: torch.Tensor,
    target: torch.Tensor,
    aux_weight: float = 0.4,
    alpha: float = 0.5,
    gamma: float = 2.0,
    ignore_index: int = 255,
    eps: float = 1e-8,
) -> torch.Tensor:
    """NFL on the main output + ``aux_weight`` × BCE on the auxiliary output (RITM's instance losses)."""
    main = normalized_focal_loss(logits, target, alpha, gamma, ignore_index, eps)
    return main + aux_weight * sigmoid_bce(aux_logits, target, ignore_index)
