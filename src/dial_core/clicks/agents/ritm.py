"""RITM's simulated user (SamsungLabs/ritm_interactive_segmentation, ``isegm/inference/clicker.py``)
for binary building masks, so the building NoC study clicks the way RITM was evaluated.

False negatives (label 1, predicted otherwise) and false positives (label 0, predicted 1), ignored
pixels in neither, are each distance-transformed with the image border counting as boundary (one
pixel of padding) and multiplied by a "not yet clicked" map. The click goes to the first (row-major)
deepest pixel of the error with the larger depth: positive (class 1) if FN is strictly deeper, else
negative (class 0; a tie is negative, as in RITM). No error left to click: None (RITM would click
pixel (0, 0) as a negative).
"""

from __future__ import annotations

import numpy as np

from dial_core.clicks.agents.base import AgentContext, depth_map, register, remove_clicked
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError


def check_binary(label: np.ndarray, ignore_index: int = 255, who: str = "agent 'ritm'", n_classes: int | None = None) -> None:
    """RITM knows one object against the rest: another class would silently become background."""
    other = (label != 0) & (label != 1) & (label != ignore_index)
    if (n_classes is not None and n_classes > 2) or other.any():
        values = ", ".join(str(v) for v in np.unique(label[other])[:5]) or f"{n_classes} classes"
        raise ConfigError(f"{who} is binary (building / background: labels 0, 1 and {ignore_index}) but got {values}; "
                          "use label_view: buildings")


@register("ritm")
def ritm(context: AgentContext) -> Click | None:
    """The next RITM click on ``context.prediction`` (see the module doc)."""
    check_binary(context.label, context.ignore_index, n_classes=context.n_classes)
    label = context.label
    gt, pred = label == 1, np.asarray(context.prediction) == 1
    background = (label != 1) & (label != context.ignore_index)
    not_clicked = remove_clicked(np.ones(label.shape, bool), context.clicks)
    fn = depth_map(gt & ~pred) * not_clicked
    fp = depth_map(background & pred) * not_clicked
    fn_max, fp_max = float(fn.max(initial=0.0)), float(fp.max(initial=0.0))
    if fn_max <= 0 and fp_max <= 0:
        return None
    positive = fn_max > fp_max
    depth = fn if positive else fp
    row, col = np.unravel_index(int(depth.argmax()), depth.shape)
    return Click(int(row), int(col), int(positive))
