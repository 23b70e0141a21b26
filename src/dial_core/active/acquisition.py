"""Acquisition functions: per-pixel uncertainty maps, higher = more worth annotating.

One registry, ``ACQUISITIONS``: name → :class:`Acquisition`, whose ``needs`` says which forward
passes the inference window loop (:mod:`dial_core.active.uncertainty`) runs for it, and whose
``pixel_map`` turns them into an (H, W) map on the device. A region (a DIAL patch, a pool image) is
scored by the mean of the map inside it (:func:`patch_scores`).

- ``entropy``, ``margin`` (1 − (p₁ − p₂)), ``least_confidence`` (1 − p₁): the softmax of one pass.
- ``mc_dropout``: per-class variance of the softmax over the MC-dropout passes, combined over
  classes by ``max`` (the DIAL code) or ``mean``.
- ``bald``: mutual information = H(mean of the passes) − mean of the passes' entropies.
- ``area_disagreement`` (Fetean & Itu, Eqs. 1–2): aggregate g = one-hot of the mean of the passes;
  Dice(f_i, g) = 2 Σ f_i·g / (Σ f_i + Σ g). With f_i a softmax (or one-hot) map both sums equal the
  pixel count, so Dice(f_i, g) = mean over pixels of f_i at g's class: the per-pixel map
  −mean_i f_i(x)[g(x)] averaged over a region *is* AD of that region (−1 when every pass agrees).
- ``odin``: 1 − max softmax at temperature T of the input perturbed by ε (:mod:`.odin`).
- ``confidnet``: 1 − the ConfidNet head's true-class-probability estimate.
- ``random``: no map; regions are visited in a seeded random order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dial_core.errors import ConfigError


# --- pixel maps on the device: probs (N, H, W); passes (T, N, H, W) ---------------------------------

_TINY = torch.finfo(torch.float32).tiny


def _entropy(probs: torch.Tensor, dim: int | tuple[int, ...] = 0) -> torch.Tensor:
    """−Σ p·log p, 0 at p = 0 (the clamp). Written out: torch.special.entr and xlogy are not
    vectorised on CPU (35 ms against 9 ms for 5×6×512² values, 2 cores)."""
    return -(probs * probs.clamp_min(_TINY).log()).sum(dim=dim)


def entropy_pixels(probs: torch.Tensor) -> torch.Tensor:
    return _entropy(probs)


def margin_pixels(probs: torch.Tensor) -> torch.Tensor:
    top2 = probs.topk(2, dim=0).values if probs.shape[0] > 1 else torch.cat([probs, torch.zeros_like(probs)])
    return 1.0 - (top2[0] - top2[1])


def least_confidence_pixels(probs: torch.Tensor) -> torch.Tensor:
    return 1.0 - probs.max(dim=0).values


def mc_variance_pixels(passes: torch.Tensor, combine: str = "max") -> torch.Tensor:
    """Variance over the passes of each class's softmax, then ``max`` (DIAL code) or ``mean`` over classes."""
    centred = passes - passes.mean(dim=0)  # by hand: torch's var over the pass dim is ~7× slower on CPU
    variance = (centred * centred).mean(dim=0)
    return variance.max(dim=0).values if combine == "max" else variance.mean(dim=0)


def bald_pixels(passes: torch.Tensor) -> torch.Tensor:
    """Mutual information between the prediction and the weights (Houlsby et al.), ≥ 0."""
    return (_entropy(passes.mean(dim=0)) - _entropy(passes, dim=(0, 1)) / passes.shape[0]).clamp_min(0.0)


def area_disagreement_pixels(passes: torch.Tensor, prediction: str = "softmax") -> torch.Tensor:
    """−mean_i f_i(x)[g(x)], g = argmax of the mean pass; f_i the softmax or its one-hot (``prediction``).

    With softmax passes, mean_i f_i(x)[g(x)] is the mean pass at its own argmax, i.e. the max over
    classes of the mean: one reduction instead of a gather (9 ms against 75 ms per 512² window).
    """
    mean = passes.mean(dim=0)
    if prediction == "one_hot":
        return -(passes.argmax(dim=1) == mean.argmax(dim=0)).float().mean(dim=0)
    return -mean.max(dim=0).values


def one_minus(confidence: torch.Tensor) -> torch.Tensor:
    """ConfidNet predicts the true-class probability (ODIN: the max softmax); uncertainty is its complement."""
    return 1.0 - confidence


# --- settings (params: evaluation.acquisition; the pool loop overrides mc_dropout) ------------------

@dataclass(frozen=True)
class McDropoutConfig:
    """Where and how dropout is sampled at inference (:mod:`dial_core.models.mc_dropout`)."""

    p: float = 0.1  # DIAL: 0.1; Area Disagreement: 0.2
    passes: int = 5  # DIAL: 5; Area Disagreement: 10
    at: str = "skips"  # skips: every encoder→decoder connection (DIAL) | head: before the 1×1 classifier (AD)
    kind: str = "channel"  # channel: whole feature maps (Dropout2d, the DIAL code) | element: single activations
    combine: str = "max"  # mc_dropout: per-class variances combined by max (DIAL code) | mean
    prediction: str = "mean"  # the map's segmentation: mean of the passes | deterministic (one more decoder pass)

    def __post_init__(self) -> None:
        for key, value, allowed in (("at", self.at, ("skips", "head")), ("kind", self.kind, ("channel", "element")),
                                    ("combine", self.combine, ("max", "mean")), ("prediction", self.prediction, ("mean", "deterministic"))):
            if value not in allowed:
                raise ConfigError(f"mc_dropout.{key}: {value!r} is not one of {', '.join(allowed)}")
        if not 0.0 <= self.p < 1.0 or self.passes < 2:
            raise ConfigError(f"mc_dropout: p must be in [0, 1) and passes ≥ 2 (got p={self.p}, passes={self.passes})")


@dataclass(frozen=True)
class OdinConfig:
    temperature: float = 100.0
    epsilon: float = 1.0 / 255.0  # on RGB scaled to [0, 1]
    sign: str = "reference"  # reference: x − ε·sign(∇CE), raises the max softmax (ODIN) | dial: x + ε·sign(∇CE) (DIAL code)

    def __post_init__(self) -> None:
        if self.sign not in ("reference", "dial"):
            raise ConfigError(f"odin.sign: {self.sign!r} is not one of reference, dial")


@dataclass(frozen=True)
class AcquisitionConfig:
    mc_dropout: McDropoutConfig = McDropoutConfig()
    odin: OdinConfig = OdinConfig()
    area_disagreement: str = "softmax"  # f_i of AD's Eq. 1: the pass's softmax | its one_hot

    @classmethod
    def from_params(cls, params: dict | None) -> "AcquisitionConfig":
        """From ``evaluation.acquisition`` (every key optional)."""
        params = params or {}
        return cls(McDropoutConfig(**(params.get("mc_dropout") or {})), OdinConfig(**(params.get("odin") or {})),
                   (params.get("area_disagreement") or {}).get("prediction", "softmax"))


# --- the registry -----------------------------------------------------------------------------------

NEEDS = ("softmax", "mc", "odin", "confidnet", "none")


@dataclass(frozen=True)
class Acquisition:
    name: str
    needs: str  # which passes the window loop runs: one of NEEDS
    pixel_map: Callable[[torch.Tensor, AcquisitionConfig], torch.Tensor] | None  # None: random order
    description: str


ACQUISITIONS: dict[str, Acquisition] = {a.name: a for a in (
    Acquisition("entropy", "softmax", lambda p, cfg: entropy_pixels(p), "Shannon entropy of the softmax"),
    Acquisition("margin", "softmax", lambda p, cfg: margin_pixels(p), "1 − (top-1 − top-2 softmax)"),
    Acquisition("least_confidence", "softmax", lambda p, cfg: least_confidence_pixels(p), "1 − max softmax"),
    Acquisition("mc_dropout", "mc", lambda t, cfg: mc_variance_pixels(t, cfg.mc_dropout.combine),
                "variance of the softmax over MC-dropout passes"),
    Acquisition("bald", "mc", lambda t, cfg: bald_pixels(t), "mutual information over MC-dropout passes"),
    Acquisition("area_disagreement", "mc", lambda t, cfg: area_disagreement_pixels(t, cfg.area_disagreement),
                "−mean Dice(pass, one-hot mean of the passes)"),
    Acquisition("odin", "odin", lambda c, cfg: one_minus(c), "1 − max softmax of the ε-perturbed input at temperature T"),
    Acquisition("confidnet", "confidnet", lambda c, cfg: one_minus(c), "1 − ConfidNet's true-class probability"),
    Acquisition("random", "none", None, "a seeded random order"),
)}


def acquisition(name: str) -> Acquisition:
    try:
        return ACQUISITIONS[name]
    except KeyError:
        raise ConfigError(f"unknown acquisition {name!r}; choose one of {', '.join(ACQUISITIONS)}") from None


def patch_runs(methods: list[str], acquisitions: list[str] | dict[str, list[str]]) -> list[tuple[str, str]]:
    """The (method, acquisition) pairs of the patch protocol (``evaluation.patches``): every method
    with every acquisition of a list, or each method with its own list of a mapping."""
    if not isinstance(acquisitions, dict):
        acquisitions = {m: list(acquisitions) for m in methods}
    if set(acquisitions) != set(methods):
        raise ConfigError(
            "evaluation.patches.acquisitions: a mapping must name exactly the methods of evaluation.patches.methods "
            f"({', '.join(methods)}); it names {', '.join(acquisitions)}")
    pairs = [(m, a) for m in methods for a in acquisitions[m]]
    for _, name in pairs:
        acquisition(name)
    return pairs


# --- numpy helpers for maps already on the host (simulated users, crops) ---------------------------

def entropy_map(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of the softmax per pixel, from (N, H, W) probabilities."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=0)


def patch_scores(uncertainty: np.ndarray, windows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Mean uncertainty inside each (row, col, h, w) window (DIAL's patch score)."""
    return np.array([uncertainty[r : r + h, c : c + w].mean() for r, c, h, w in windows])


def uncertainty_order(scores: np.ndarray, exclude: frozenset[int] | set[int] = frozenset()) -> list[int]:
    """Indices of the windows not in ``exclude``, most uncertain first (ties keep grid order)."""
    remaining = np.array([i for i in range(len(scores)) if i not in exclude], dtype=int)
    if remaining.size == 0:
        return []
    return [int(i) for i in remaining[np.argsort(-scores[remaining], kind="stable")]]


def random_order(n_windows: int, rng: np.random.Generator) -> list[int]:
    return [int(i) for i in rng.permutation(n_windows)]
