"""Whole-image inference: padding to the network's size multiple and overlapping windows."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dial_core.data.tiling import tile_windows
from dial_core.models.segmenter import SIZE_MULTIPLE, Segmenter, network_input


def pad_to_multiple(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) padded at the bottom and right to the network's size multiple; crop outputs back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def forward_windows(model: Segmenter, x: torch.Tensor) -> torch.Tensor:
    """Logits (B, N, h, w) of a batch of same-size windows (B, C, h, w), padded and cropped back."""
    h, w = x.shape[-2:]
    return model(pad_to_multiple(x))[:, :, :h, :w]


def forward_window(model: Segmenter, x: torch.Tensor, with_features: bool = False):
    """Logits (and decoder features) of one (C, H, W) window, padded and cropped back."""
    if not with_features:
        return forward_windows(model, x.unsqueeze(0))[0], None
    h, w = x.shape[-2:]
    logits, features = model.forward_features(pad_to_multiple(x.unsqueeze(0)))
    return logits[0, :, :h, :w], features[0, :, :h, :w]


@torch.no_grad()
def predict_probs(
    model: Segmenter,
    image: np.ndarray,
    annotations: np.ndarray | None,
    window: int = 512,
    overlap: int = 128,
    progress: bool = False,
) -> tuple[np.ndarray, None]:
    """Softmax (N, H, W) of a whole image, averaged over overlapping windows (and None: the map
    slot of :func:`dial_core.active.uncertainty.predict_with_uncertainty`). ``progress``: a tqdm bar
    over the windows (the command line's long predictions)."""
    model.eval()
    device = next(model.parameters()).device
    n = model.spec.n_classes
    x = network_input(image, annotations, model.spec.n_annotation_channels).to(device)
    height, width = image.shape[:2]
    probs = torch.zeros((n, height, width), device=device)
    weight = torch.zeros((height, width), device=device)
    for r, c, h, w in tqdm(tile_windows(height, width, window, overlap), desc="predict", unit="window",
                           disable=not progress, leave=False):
        logits, _ = forward_window(model, x[:, r : r + h, c : c + w])
        probs[:, r : r + h, c : c + w] += torch.softmax(logits, dim=0)
        weight[r : r + h, c : c + w] += 1
    probs /= weight
    return probs.cpu().numpy(), None
