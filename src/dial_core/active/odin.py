"""ODIN (Liang et al. 2018) for segmentation windows, as DIAL uses it.

Temperature scaling plus a small input perturbation. ODIN moves the input *against* the gradient
of the cross-entropy of the predicted class, x̃ = x − ε·sign(∇ₓ CE), which raises the max softmax
(``sign="reference"``); the DIAL code adds the gradient, x̃ = x + ε·sign(∇ₓ CE), which lowers it
(``sign="dial"``). The annotation channels are zeroed (DIAL scores the network without clicks) and
only the RGB channels are perturbed. Cost per window: one forward with a backward to the input
(weights get no gradient) and one more forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dial_core.active.acquisition import OdinConfig

RGB = 3


def odin_max_softmax(model, x: torch.Tensor, cfg: OdinConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(max softmax at temperature T of the perturbed input (B, H, W), logits of ``x`` without
    annotation channels (B, N, H, W)) for a (B, C, H, W) input."""
    clean = x.detach().clone()
    clean[:, RGB:] = 0.0
    clean.requires_grad_(True)
    with torch.enable_grad():
        logits = model(clean)
        loss = F.cross_entropy(logits / cfg.temperature, logits.argmax(dim=1), reduction="sum")
        (gradient,) = torch.autograd.grad(loss, clean)
    direction = -1.0 if cfg.sign == "reference" else 1.0
    perturbed = clean.detach().clone()
    perturbed[:, :RGB] += direction * cfg.epsilon * gradient[:, :RGB].sign()
    with torch.no_grad():
        score = torch.softmax(model(perturbed) / cfg.temperature, dim=1).max(dim=1).values
    return score, logits.detach()
