"""FESTA's feature regulariser (Hua et al., GRSL 2022), the ``festa`` arm of DIAL Fig. 5.

FESTA trains a network from sparse point labels: the cross-entropy on the labelled points says
little about the other pixels, so a regulariser on the features before the classifier (the decoder
output, :meth:`Segmenter.forward_features`) shapes the unlabelled ones. For a random sample of
*anchor* pixels it adds

    α · d_feat + β · d_spat + γ · c_far     (mean over the anchors; α 0.5, β 1.5, γ 1)

- ``d_feat``: the smallest squared Euclidean distance from the anchor's feature to any *other*
  pixel's feature — pulls each feature towards its nearest neighbour in feature space, so pixels
  that already look alike form tight clusters the classifier can label together;
- ``d_spat``: the smallest squared distance from the anchor's feature to those of its 8 image
  neighbours — the spatial prior: adjacent pixels mostly share a class, so at least one neighbour
  should look alike (a pixel may sit on an edge, hence the minimum, not the mean);
- ``c_far``: the smallest cosine similarity to any pixel — pushes the anchor away from the feature
  farthest from it, which keeps the clusters apart (the two attractive terms alone would collapse
  every feature onto one point).

Deviations from the authors' Keras ``loss.py``, and why: their ``d_spat`` multiplies the distance
matrix by a 0/1 neighbour mask before the minimum, so non-neighbours count as 0 and the minimum is
0 for every anchor (the term never acts); we take the minimum over the neighbours, as the paper
describes. Their anchors are drawn away from the border of a 256-wide image (a hard-coded index
offset); ours are drawn uniformly over the window and a border anchor has fewer neighbours.

Cost: the nearest / farthest searches compare every anchor with every pixel (one anchors × H·W dot
product serves both). They run without gradient in chunks of at most :data:`CHUNK` anchors (at 512²,
1 % is 2 621 anchors × 262 144 pixels: 2.7 GB in one piece; a chunk peaks at two 268 MB matrices);
the terms are then recomputed with gradient on the selected pairs only, which gives the same value
and the same (sub)gradient as a ``min`` over the whole matrix. Measured on 2 CPU cores, 32 decoder
channels: ≈ 0.3 s per step at 128², ≈ 9 s at 512² (forward + backward of the term alone; 512² is GPU work).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 256  # anchors compared with every pixel at once (memory: CHUNK × H·W floats)
_EPS = 1e-8  # cosine similarity of a zero feature (the authors' code adds the same to the norms' product)
# the 8 image neighbours as (row, col) offsets
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True)
class FestaConfig:
    anchor_fraction: float = 0.01  # share of the window's pixels sampled as anchors (at least one)
    alpha: float = 0.5  # weight of d_feat (nearest neighbour in feature space)
    beta: float = 1.5  # weight of d_spat (nearest of the 8 image neighbours)
    gamma: float = 1.0  # weight of c_far (cosine similarity to the farthest feature)

    def __post_init__(self) -> None:
        if not 0 < self.anchor_fraction <= 1:
            raise ValueError(f"FESTA anchor_fraction must be in (0, 1], not {self.anchor_fraction}")


def sample_anchors(height: int, width: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``max(1, int(fraction · H·W))`` distinct flat pixel indices, drawn uniformly from ``rng``."""
    n = height * width
    return np.sort(rng.choice(n, size=min(n, max(1, int(fraction * n))), replace=False))


def festa_parts(features: torch.Tensor, anchors: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-anchor (d_feat, d_spat, c_far) of a (C, H, W) feature map, each (A,), with gradient.

    An anchor with no other pixel (a 1×1 map) has d_feat 0; one with no neighbour inside the map
    has d_spat 0.
    """
    c, h, w = features.shape
    flat = features.reshape(c, h * w).T  # (P, C)
    idx = torch.as_tensor(np.asarray(anchors, dtype=np.int64), device=features.device)
    nearest, farthest = _search(flat, idx)
    own = flat[idx]  # (A, C)
    d_feat = ((own - flat[nearest]) ** 2).sum(dim=1)  # a 1×1 map: its own feature, 0
    c_far = F.cosine_similarity(own, flat[farthest], dim=1, eps=_EPS)
    return d_feat, _spatial(features, idx), c_far


def festa_term(features: torch.Tensor, rng: np.random.Generator, cfg: FestaConfig,
               anchors: Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
    """FESTA's regulariser of one (C, H, W) feature map: mean over the anchors of
    α·d_feat + β·d_spat + γ·c_far. Anchors are drawn from ``rng`` unless given (flat indices)."""
    if anchors is None:
        anchors = sample_anchors(features.shape[1], features.shape[2], cfg.anchor_fraction, rng)
    d_feat, d_spat, c_far = festa_parts(features, anchors)
    return (cfg.alpha * d_feat + cfg.beta * d_spat + cfg.gamma * c_far).mean()


@torch.no_grad()
def _search(flat: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each anchor: the flat index of its nearest other feature (squared Euclidean) and of its
    farthest feature (smallest cosine similarity), in chunks of :data:`CHUNK` anchors."""
    squared = (flat**2).sum(dim=1)  # (P,)
    norms = squared.sqrt().clamp_min(_EPS)
    nearest, farthest = [], []
    for start in range(0, len(anchors), CHUNK):
        part = anchors[start : start + CHUNK]
        dot = flat[part] @ flat.T  # (k, P): the one product both searches read
        # cos(a, p) = a·p / (‖a‖‖p‖); ‖a‖ is the same along a row, so the argmin needs a·p / ‖p‖ only
        farthest.append((dot / norms[None, :]).argmin(dim=1))
        distance = dot.mul_(-2).add_(squared[None, :]).add_(squared[part, None])  # ‖a‖² + ‖p‖² − 2 a·p, in place
        distance[torch.arange(len(part), device=flat.device), part] = float("inf")  # not itself
        nearest.append(distance.argmin(dim=1))
    return torch.cat(nearest), torch.cat(farthest)


def _spatial(features: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Per anchor, the smallest squared feature distance to its 8 image neighbours inside the map."""
    _, h, w = features.shape
    rows, cols = anchors // w, anchors % w
    own = features[:, rows, cols]  # (C, A)
    best = torch.full((len(anchors),), float("inf"), device=features.device, dtype=features.dtype)
    for dr, dc in _NEIGHBOURS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        d = ((own - features[:, r.clamp(0, h - 1), c.clamp(0, w - 1)]) ** 2).sum(dim=0)
        best = torch.minimum(best, torch.where(inside, d, torch.full_like(d, float("inf"))))
    return torch.where(torch.isinf(best), torch.zeros_like(best), best)
