"""ALCD (Baetens et al. 2019) as DIAL runs it: a random forest on per-pixel features, the ``alcd``
method of DIAL Fig. 5.

ALCD labels clouds with a random forest on the spectral bands and indices of each pixel. DIAL adapts
it to aerial segmentation "in a fine-tuning setting": the forest is pre-trained on 100 000 pixel
samples per training image, then refit with the same clicks AC and DISCA get (30 % → 30.5 % IoU on
ISPRS). With RGB only there are no indices to add, so each pixel also gets the local mean and
standard deviation of every band at a few window sizes: the texture a pixel classifier otherwise
cannot see (a grey roof and a grey road differ in their neighbourhoods, not in their colour).

Everything here is numpy / scikit-learn (no torch). The click protocol is
:func:`dial_core.evaluation.alcd_protocol.alcd_click_protocol`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import uniform_filter

from dial_core.atomic import atomic_path
from dial_core.errors import DataError

if TYPE_CHECKING:  # scikit-learn loads in 1.6 s: only the forest methods import it
    from sklearn.ensemble import RandomForestClassifier

PREDICT_CHUNK = 1 << 18  # pixels per predict_proba call: bounds its (pixels × classes × trees) work arrays


@dataclass(frozen=True)
class AlcdConfig:
    samples_per_image: int  # labelled pixels drawn per training image (DIAL: 100 000)
    n_estimators: int
    max_depth: int | None  # None: grown until the leaves are pure (or min_samples_leaf)
    min_samples_leaf: int
    scales: tuple[int, ...] = (3, 7, 15)  # side of the square windows of the local statistics, px
    seed: int = 0  # the forest's random_state: the same samples and clicks give the same forest
    n_jobs: int = 1  # trees fitted / evaluated in parallel (the results do not depend on it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(int(s) for s in self.scales))  # a YAML list: hashable, comparable
        if self.samples_per_image < 1 or self.n_estimators < 1 or self.min_samples_leaf < 1 or min(self.scales, default=1) < 1:
            raise ValueError(f"ALCD settings must be positive: {self}")

    @property
    def n_features(self) -> int:
        return feature_count(self.scales)


def feature_count(scales: Sequence[int]) -> int:
    """RGB plus the mean and standard deviation of each band per scale."""
    return 3 + 6 * len(scales)


def pixel_features(image: np.ndarray, scales: Sequence[int] = (3, 7, 15)) -> np.ndarray:
    """(H, W, F) float32 features of an RGB uint8 image: R, G, B, then per scale s the local means
    of R, G, B over the s × s window and their local standard deviations (E[x²] − E[x]², clipped at 0
    against rounding). Borders are mirrored. Values stay on the 0–255 scale (trees need no scaling)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"pixel_features: expected an (H, W, 3) RGB image, got shape {image.shape}")
    rgb = image.astype(np.float64)  # float64: E[x²] − E[x]² cancels badly in float32
    parts = [rgb]
    for s in scales:
        size = (s, s, 1)  # per band
        mean = uniform_filter(rgb, size=size, mode="reflect")
        square = uniform_filter(rgb**2, size=size, mode="reflect")
        parts += [mean, np.sqrt(np.clip(square - mean**2, 0.0, None))]
    return np.concatenate(parts, axis=2).astype(np.float32)


def sample_training_pixels(samples: Iterable[tuple[np.ndarray, np.ndarray]], per_image: int, rng: np.random.Generator,
                           scales: Sequence[int] = (3, 7, 15), ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, F), y uint8 (n,)): per (image, label), ``per_image`` pixels drawn uniformly
    without replacement among the labelled ones (every labelled pixel when there are fewer)."""
    xs, ys = [], []
    for image, label in samples:
        labelled = np.flatnonzero(label.ravel() != ignore_index)
        if labelled.size == 0:
            continue
        chosen = np.sort(rng.choice(labelled, size=min(per_image, labelled.size), replace=False))
        xs.append(pixel_features(image, scales).reshape(-1, feature_count(scales))[chosen])
        ys.append(label.ravel()[chosen].astype(np.uint8))
    if not xs:
        raise ValueError("sample_training_pixels: no labelled pixel in any training image")
    return np.concatenate(xs), np.concatenate(ys)


def fit_forest(X: np.ndarray, y: np.ndarray, cfg: AlcdConfig) -> RandomForestClassifier:
    """A random forest on (X, y), seeded by ``cfg.seed``: deterministic for the same inputs."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth,
                                    min_samples_leaf=cfg.min_samples_leaf, random_state=cfg.seed, n_jobs=cfg.n_jobs)
    return forest.fit(X, y)


def predict_proba_map(forest: RandomForestClassifier, features: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, H, W) float32 class probabilities of (H, W, F) features. A class the forest never saw in
    training gets probability 0 (its columns follow ``forest.classes_``, not 0..N-1)."""
    h, w, f = features.shape
    flat = features.reshape(h * w, f)
    out = np.zeros((n_classes, h * w), np.float32)
    columns = forest.classes_.astype(np.int64)
    for start in range(0, h * w, PREDICT_CHUNK):
        out[columns, start : start + PREDICT_CHUNK] = forest.predict_proba(flat[start : start + PREDICT_CHUNK]).T
    return out.reshape(n_classes, h, w)


def with_clicks(X: np.ndarray, y: np.ndarray, features: np.ndarray, clicks: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """The training set extended by one sample per click: the clicked pixel's features and class."""
    if not clicks:
        return X, y
    rows = np.array([c.row for c in clicks])
    cols = np.array([c.col for c in clicks])
    return (np.concatenate([X, features[rows, cols].astype(X.dtype)]),
            np.concatenate([y, np.array([c.cls for c in clicks], dtype=y.dtype)]))


def save_alcd_samples(path: str | Path, X: np.ndarray, y: np.ndarray, metrics: dict) -> None:
    """Write the pre-training samples to ``path`` (.npz, atomically): X float32, y uint8 and
    ``metrics`` (JSON: the scales, the forest's validation scores ...) so a reader can check them."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, X=X.astype(np.float32), y=y.astype(np.uint8), metrics=np.array(json.dumps(metrics)))


def load_alcd_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(X, y, metrics) written by :func:`save_alcd_samples`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["X"], data["y"], json.loads(str(data["metrics"]))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read the ALCD samples {path} ({type(exc).__name__}: {exc}); "
                        "re-run the rule that pre-trains ALCD (pretrain_alcd)") from exc
