"""What every simulated user sees (:class:`AgentContext`), the registry, and shared helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from dial_core.clicks.types import Click


@dataclass
class AgentContext:
    """Everything a simulated user may look at to place the next click on one image (or patch).

    ``clicks`` are the clicks placed so far on this image, in the coordinates of ``label``;
    ``step`` is the 1-based index of the click being asked for and ``budget`` the clicks planned
    (DISIR's class cycling needs both); ``uncertainty`` is an (H, W) map, larger = less certain,
    given to the users that need one (:func:`needs_uncertainty`); ``recorded`` are a person's clicks
    for this image (the ``human`` user) in image coordinates; ``window`` is (row, col, h, w) of
    ``label`` inside the image when the protocol shows a patch only (None: the whole image).
    ``memory`` persists across the steps of one image: users that remember what they did (which
    region a click targeted) keep it there; the protocol makes a fresh one per image.
    """

    label: np.ndarray
    prediction: np.ndarray
    clicks: Sequence[Click] = ()
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    uncertainty: np.ndarray | None = None
    ignore_index: int = 255
    image_id: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    step: int = 1
    budget: int = 1
    n_classes: int | None = None
    recorded: Sequence[Click] | None = None
    window: tuple[int, int, int, int] | None = None
    memory: dict = field(default_factory=dict)

    @property
    def classes(self) -> int:
        """The number of classes: given, or 1 + the largest labelled class of ``label``."""
        if self.n_classes is not None:
            return int(self.n_classes)
        valid = self.label[self.label != self.ignore_index]
        return int(valid.max()) + 1 if valid.size else 1


Agent = Callable[[AgentContext], "Click | None"]

AGENTS: dict[str, Agent] = {}
_UNCERTAINTY: set[str] = set()


def register(name: str, *, uncertainty: bool = False) -> Callable[[Agent], Agent]:
    """Add a simulated user to the registry (``uncertainty``: it reads ``context.uncertainty``)."""

    def add(fn: Agent) -> Agent:
        AGENTS[name] = fn
        if uncertainty:
            _UNCERTAINTY.add(name)
        return fn

    return add


def users(agent: str, options: Mapping[str, Any] | None = None) -> set[str]:
    """``agent`` and the users it wraps (``noisy`` wraps ``options['base']``)."""
    if agent == "noisy":
        return {agent, str((options or {}).get("base", "largest_mistake_centre"))}
    return {agent}


def needs_uncertainty(agent: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether the protocol must compute an uncertainty map for ``agent`` (a wrapper asks its base)."""
    return bool(users(agent, options) & _UNCERTAINTY)


def needs_recorded(agent: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``agent`` replays a person's recorded clicks (the step must read the click logs)."""
    return "human" in users(agent, options)


def mistake_mask(label: np.ndarray, prediction: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Labelled pixels the prediction gets wrong."""
    return (prediction != label) & (label != ignore_index)


def remove_clicked(mask: np.ndarray, clicks: Sequence[Click]) -> np.ndarray:
    """``mask`` without the pixels already clicked (clicks outside it are ignored); a copy."""
    mask = mask.copy()
    for click in clicks:
        if 0 <= click.row < mask.shape[0] and 0 <= click.col < mask.shape[1]:
            mask[click.row, click.col] = False
    return mask


def depth_map(region: np.ndarray) -> np.ndarray:
    """Distance to the nearest pixel outside ``region``, the image border counting as boundary."""
    padded = np.pad(region, 1, constant_values=False)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1]


def deepest_point(region: np.ndarray) -> tuple[int, int]:
    """The pixel deepest inside ``region`` (first argmax of :func:`depth_map`): inside by construction,
    even for concave regions and regions with holes, unlike a centroid."""
    depth = depth_map(region)
    row, col = np.unravel_index(int(depth.argmax()), depth.shape)
    return int(row), int(col)


def random_pixel(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """A uniformly drawn pixel of ``mask`` (None when it is empty)."""
    flat = np.flatnonzero(mask)
    if flat.size == 0:
        return None
    row, col = np.unravel_index(int(flat[rng.integers(flat.size)]), mask.shape)
    return int(row), int(col)


def click_at(label: np.ndarray, point: tuple[int, int] | None) -> Click | None:
    """A click at ``point`` carrying the ground-truth class there."""
    if point is None:
        return None
    row, col = point
    return Click(row, col, int(label[row, col]))
