"""Prediction with uncertainty: the acquisition's pixel map computed inside the inference window
loop, on the device, from the passes that window already runs (DIAL Table III's measurement).

Each window runs what its acquisition ``needs`` (:data:`~dial_core.active.acquisition.NEEDS`): one
forward (entropy, margin, least confidence, random), the forward with decoder features for the
ConfidNet head, the MC-dropout passes (:func:`~dial_core.models.mc_dropout.mc_logits`), or ODIN's
forward, backward to the input and second forward. Softmax and map are averaged over overlapping
windows like the plain prediction.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from dial_core.active.acquisition import AcquisitionConfig, acquisition
from dial_core.active.odin import odin_max_softmax
from dial_core.data.tiling import tile_windows
from dial_core.interactive.inference import pad_to_multiple
from dial_core.models.mc_dropout import mc_logits
from dial_core.models.segmenter import Segmenter, network_input


def _window(model: Segmenter, x: torch.Tensor, name: str, cfg: AcquisitionConfig, confidnet: torch.nn.Module | None,
            generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax (N, H, W) and pixel map (H, W) (None for random) of one padded (1, C, H, W) window."""
    member = acquisition(name)
    if member.needs == "mc":
        passes, deterministic = mc_logits(model, x, cfg.mc_dropout, generator)
        passes = torch.softmax(passes, dim=1)
        probs = passes.mean(dim=0) if deterministic is None else torch.softmax(deterministic[0], dim=0)
        return probs, member.pixel_map(passes, cfg)
    if member.needs == "confidnet":
        logits, features = model.forward_features(x)
        return torch.softmax(logits[0], dim=0), member.pixel_map(confidnet(features)[0, 0], cfg)
    if member.needs == "odin":
        score, clean_logits = odin_max_softmax(model, x, cfg.odin)
        with_clicks = bool(x[:, 3:].any())  # the prediction reads the clicks; ODIN's score never does
        logits = model(x) if with_clicks else clean_logits
        return torch.softmax(logits[0], dim=0), member.pixel_map(score[0], cfg)
    probs = torch.softmax(model(x)[0], dim=0)
    return probs, (member.pixel_map(probs, cfg) if member.pixel_map is not None else None)


@torch.no_grad()
def predict_with_uncertainty(
    model: Segmenter,
    image: np.ndarray,
    annotations: np.ndarray | None,
    name: str,
    window: int = 512,
    overlap: int = 128,
    cfg: AcquisitionConfig | None = None,
    confidnet: torch.nn.Module | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax (N, H, W) of a whole image and the ``name`` acquisition's map (H, W); None for random.

    ``seed`` seeds the MC-dropout masks (the same seed, the same map); ``progress`` shows a tqdm bar
    over the windows.
    """
    member = acquisition(name)
    if member.needs == "confidnet" and confidnet is None:
        raise ValueError("the confidnet acquisition needs a trained ConfidNet head")
    cfg = cfg or AcquisitionConfig()
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed) if member.needs == "mc" else None
    x = network_input(image, annotations, model.spec.n_annotation_channels).to(device)
    height, width = image.shape[:2]
    probs = torch.zeros((model.spec.n_classes, height, width), device=device)
    scores = torch.zeros((height, width), device=device) if member.pixel_map is not None else None
    weight = torch.zeros((height, width), device=device)
    for r, c, h, w in tqdm(tile_windows(height, width, window, overlap), desc=f"predict + {name}", unit="window",
                           disable=not progress, leave=False):
        padded = pad_to_multiple(x[:, r : r + h, c : c + w].unsqueeze(0))
        p, m = _window(model, padded, name, cfg, confidnet, generator)
        probs[:, r : r + h, c : c + w] += p[:, :h, :w]
        if scores is not None:
            scores[r : r + h, c : c + w] += m[:h, :w]
        weight[r : r + h, c : c + w] += 1
    probs /= weight
    return probs.cpu().numpy(), (None if scores is None else (scores / weight).cpu().numpy())
