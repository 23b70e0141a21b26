"""Whole-image inference: padding to the network's size multiple and overlapping windows."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dial_core.data.tiling import tile_windows
from dial_core.models.segmenter import SIZE_MULTIPLE, Segmenter, network_input


def _pad(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def forward_window(model: Segmenter, x: torch.Tensor, with_features: bool = False):
    """Logits (and decoder features) of one (C, H, W) window, padded and cropped back."""
    padded, h, w = _pad(x.unsqueeze(0))
    if with_features:
        logits, features = model.forward_features(padded)
        return logits[0, :, :h, :w], features[0, :, :h, :w]
    return model(padded)[0, :, :h, :w], None


@torch.no_grad()
def predict_probs(
    model: Segmenter,
    image: np.ndarray,
    annotations: np.ndarray | None,
    window: int = 512,
    overlap: int = 128,
    confidnet: torch.nn.Module | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax (N, H, W) of a whole image, averaged over overlapping windows.

    With ``confidnet`` also returns its confidence map (H, W) from the same forward passes.
    """
    model.eval()
    device = next(model.parameters()).device
    n = model.spec.n_classes
    x = network_input(image, annotations, model.spec.n_annotation_channels).to(device)
    height, width = image.shape[:2]
    probs = torch.zeros((n, height, width), device=device)
    conf = torch.zeros((height, width), device=device) if confidnet is not None else None
    weight = torch.zeros((height, width), device=device)
    for r, c, h, w in tile_windows(height, width, window, overlap):
        logits, features = forward_window(model, x[:, r : r + h, c : c + w], with_features=confidnet is not None)
        probs[:, r : r + h, c : c + w] += torch.softmax(logits, dim=0)
        if confidnet is not None:
            conf[r : r + h, c : c + w] += confidnet(features.unsqueeze(0))[0, 0]
        weight[r : r + h, c : c + w] += 1
    probs /= weight
    if conf is not None:
        conf = (conf / weight).cpu().numpy()
    return probs.cpu().numpy(), conf
