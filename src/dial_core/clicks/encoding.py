"""Encode clicks into the annotation channels that AC networks take after the RGB bands.

Encodings (DIAL appendix A; DISIR):
- ``binary``: a small disk (DISIR: ~1.5 px radius);
- ``dt``: a distance-transform cone 1 - d / radius (DIAL: 10 px);
- ``cpm`` / ``cgt``: the DT cone kept only on the pixels connected to the click in the current
  prediction / in the ground truth (C-GT needs the ground truth: an upper bound, not a method);
- ``gf``: the DT cone smoothed by a guided filter with the image as guide (edge preserving).

Each click lands in the channel of its *own* class, so no ground-truth boundary leaks into the
input (the reference code split a dilated disk by ground-truth class; REFERENCE-NOTES.md). With a
single annotation channel (DISIR's "Ic" variants) every click goes to channel 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dial_core.clicks.types import Click
from dial_core.errors import ConfigError

ENCODINGS = ("binary", "dt", "cpm", "cgt", "gf")
CHANNEL_MODES = ("per_class", "single")
GUIDED_FILTER_EPS = 1e-2  # regularisation of the guided filter on [0, 1] grey levels


def _click_masks(clicks: Sequence[Click], shape: tuple[int, int], n_channels: int) -> np.ndarray:
    masks = np.zeros((n_channels, *shape), dtype=bool)
    for click in clicks:
        if not (0 <= click.cls < n_channels):
            raise ValueError(f"click class {click.cls} outside 0..{n_channels - 1}")
        if 0 <= click.row < shape[0] and 0 <= click.col < shape[1]:
            masks[click.cls, click.row, click.col] = True
    return masks


def _cone(mask: np.ndarray, radius: float) -> np.ndarray:
    return np.clip(1.0 - ndimage.distance_transform_edt(~mask) / radius, 0.0, 1.0)


def _connected_cones(clicks: Sequence[Click], shape: tuple[int, int], n_channels: int, radius: float, region_map: np.ndarray) -> np.ndarray:
    """DT cone of each click restricted to the region of ``region_map`` that contains the click."""
    channels = np.zeros((n_channels, *shape), dtype=np.float32)
    reach = int(np.ceil(radius))
    for click in clicks:
        if not (0 <= click.row < shape[0] and 0 <= click.col < shape[1]):
            continue
        r0, r1 = max(0, click.row - reach), min(shape[0], click.row + reach + 1)
        c0, c1 = max(0, click.col - reach), min(shape[1], click.col + reach + 1)
        local = region_map[r0:r1, c0:c1]
        components, _ = ndimage.label(local == region_map[click.row, click.col])
        region = components == components[click.row - r0, click.col - c0]
        rows, cols = np.ogrid[r0:r1, c0:c1]
        cone = np.clip(1.0 - np.hypot(rows - click.row, cols - click.col) / radius, 0.0, 1.0) * region
        view = channels[click.cls, r0:r1, c0:c1]
        np.maximum(view, cone, out=view)
    return channels


def _box(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over ``size``² (reflect at borders), each pixel summed from its own window only:
    ``uniform_filter``'s running sum carries rounding along whole rows, so a click would change
    far pixels by ~1e-16 and a crop would not encode exactly like the whole image (local re-prediction)."""
    weights = np.full(size, 1.0 / size)
    return ndimage.correlate1d(ndimage.correlate1d(a, weights, axis=0, mode="reflect"), weights, axis=1, mode="reflect")


def guided_radius(radius: float) -> int:
    """The guided filter's box radius for a click radius (half of it, at least 1 px)."""
    return max(1, int(radius // 2))


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float = GUIDED_FILTER_EPS) -> np.ndarray:
    """He et al.'s guided filter: ``source`` smoothed with the edges of ``guide`` (both (H, W)).

    An output pixel depends on ``guide`` and ``source`` within ``2 * radius`` px only (a box of boxes)."""
    size = 2 * radius + 1
    box = lambda a: _box(a, size)
    mean_i, mean_p = box(guide), box(source)
    var_i = box(guide * guide) - mean_i**2
    a = (box(guide * source) - mean_i * mean_p) / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def encode_clicks(
    clicks: Sequence[Click],
    shape: tuple[int, int],
    n_channels: int,
    encoding: str = "dt",
    radius: float = 10.0,
    *,
    image: np.ndarray | None = None,
    prediction: np.ndarray | None = None,
    label: np.ndarray | None = None,
) -> np.ndarray:
    """(n_channels, H, W) float32 annotation channels; clicks outside ``shape`` are ignored.

    ``image`` (H, W, 3) is needed by ``gf``, ``prediction`` (H, W) by ``cpm``, ``label`` by ``cgt``.
    """
    if encoding not in ENCODINGS:
        raise ConfigError(f"clicks.encoding = {encoding!r}: choose one of {', '.join(ENCODINGS)}")
    if radius <= 0:
        raise ConfigError(f"clicks.radius = {radius}: must be > 0")
    needed = {"gf": ("image", image), "cpm": ("prediction", prediction), "cgt": ("label", label)}.get(encoding)
    if needed is not None and needed[1] is None:
        raise ValueError(f"the {encoding} encoding needs the {needed[0]}")
    if encoding in ("cpm", "cgt"):
        return _connected_cones(clicks, shape, n_channels, radius, prediction if encoding == "cpm" else label)
    channels = np.zeros((n_channels, *shape), dtype=np.float32)
    masks = _click_masks(clicks, shape, n_channels)
    grey = image.astype(np.float32).mean(axis=2) / 255.0 if encoding == "gf" else None
    for cls in np.flatnonzero(masks.any(axis=(1, 2))):
        if encoding == "binary":
            channels[cls] = ndimage.distance_transform_edt(~masks[cls]) <= radius
        else:
            channels[cls] = _cone(masks[cls], radius)
            if grey is not None:
                channels[cls] = np.clip(guided_filter(grey, channels[cls], guided_radius(radius)), 0.0, 1.0)
    return channels


@dataclass(frozen=True)
class ClickEncoder:
    """How a network reads clicks: the encoding, its radius and the channel layout."""

    encoding: str
    radius: float
    n_classes: int
    channels: str = "per_class"  # or "single": DISIR's one-channel variants, the class is dropped

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_MODES:
            raise ConfigError(f"annotation channels {self.channels!r}: choose one of {', '.join(CHANNEL_MODES)}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"clicks.encoding = {self.encoding!r}: choose one of {', '.join(ENCODINGS)}")

    @property
    def n_channels(self) -> int:
        return self.n_classes if self.channels == "per_class" else 1

    @property
    def reach(self) -> int:
        """Farthest (Chebyshev) pixel distance at which one click can change a channel value: what a
        local re-encoding after a click must cover. The cone (and binary disk, and C-PM / C-GT
        labelling window) stays within ``ceil(radius)``; the guided filter adds its box-of-box span."""
        reach = int(np.ceil(self.radius))
        return reach + 2 * guided_radius(self.radius) if self.encoding == "gf" else reach

    @property
    def needs_prediction(self) -> bool:
        return self.encoding == "cpm"

    def __call__(
        self,
        clicks: Sequence[Click],
        shape: tuple[int, int],
        *,
        image: np.ndarray | None = None,
        prediction: np.ndarray | None = None,
        label: np.ndarray | None = None,
    ) -> np.ndarray:
        if self.channels == "single":
            clicks = [Click(c.row, c.col, 0) for c in clicks]
        return encode_clicks(clicks, shape, self.n_channels, self.encoding, self.radius,
                             image=image, prediction=prediction, label=label)
