"""DIAL's "max" user: a click in the spatially largest mistake, at its centre or on its border.

A mistake is a connected region (8-connected) of wrongly predicted pixels of one ground-truth
class, so the click carries a single class.

Never re-clicking a region without effect: for every click the user remembers the region it
targeted (its size, class and up to 256 of its pixels, evenly spread) in ``context.memory``. At the
next step a mistake region that holds one of those remembered pixels, has the same class and has
not shrunk (size ≥ (1 − ``min_shrink``) × the remembered size; option, default 0 = any shrinkage
counts as an effect) is skipped in favour of the next largest. Only when every mistake is such an
unchanged, already clicked region does the user click the largest one again (it still is the
biggest error and the budget is not spent for nothing). Already clicked pixels are never clicked
again: they count as boundary of the region when its deepest point is sought.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dial_core.clicks.agents.base import AgentContext, click_at, deepest_point, mistake_mask, register, remove_clicked
from dial_core.clicks.sampling import border_candidates
from dial_core.clicks.types import Click

SAMPLES = 256
_EIGHT = np.ones((3, 3), bool)


def mistake_regions(label: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(regions, sizes, classes): an int32 map of mistake ids (0 = none), ids ordered by class then
    scan order, and per id its size and ground-truth class (index 0 unused)."""
    regions = np.zeros(label.shape, np.int32)
    sizes, classes = [np.zeros(1, np.int64)], [np.full(1, -1, np.int64)]
    offset = 0
    for cls in np.unique(label[errors]):
        components, count = ndimage.label(errors & (label == cls))
        inside = components > 0
        regions[inside] = components[inside] + offset
        sizes.append(np.bincount(components.ravel(), minlength=count + 1)[1:])
        classes.append(np.full(count, int(cls), np.int64))
        offset += count
    return regions, np.concatenate(sizes), np.concatenate(classes)


def _unchanged(regions: np.ndarray, sizes: np.ndarray, classes: np.ndarray, memory: list[dict], min_shrink: float) -> set[int]:
    """Ids of current regions that an earlier click targeted and that have not shrunk since."""
    flat = regions.ravel()
    blocked: set[int] = set()
    for record in memory:
        for rid in np.unique(flat[record["samples"]]):
            if rid and classes[rid] == record["cls"] and sizes[rid] >= (1.0 - min_shrink) * record["size"]:
                blocked.add(int(rid))
    return blocked


def pick_largest_mistake(context: AgentContext, key: str) -> tuple[np.ndarray, int, int] | None:
    """The largest mistake not already clicked without effect (see the module doc) as (mask, row,
    col): the mask covers the region's bounding box grown by one pixel, placed at (row, col) in the
    image, without the pixels already clicked. Remembered in ``context.memory[key]``. None: no
    mistake left. Working on the box keeps a click's cost that of its region, not of the image."""
    label = context.label
    errors = mistake_mask(label, context.prediction, context.ignore_index)
    if not errors.any():
        return None
    regions, sizes, classes = mistake_regions(label, errors)
    boxes = ndimage.find_objects(regions)
    memory: list[dict] = context.memory.setdefault(key, [])
    blocked = _unchanged(regions, sizes, classes, memory, float(context.options.get("min_shrink", 0.0)))
    order = np.argsort(-sizes[1:], kind="stable") + 1  # ties: lower class first, then scan order
    chosen = fallback = None
    for rid in order:
        rows, cols = boxes[rid - 1]
        r0, c0 = max(rows.start - 1, 0), max(cols.start - 1, 0)
        r1, c1 = min(rows.stop + 1, label.shape[0]), min(cols.stop + 1, label.shape[1])
        region = remove_clicked(regions[r0:r1, c0:c1] == rid, [k.shifted(r0, c0) for k in context.clicks])
        if not region.any():
            continue
        if int(rid) not in blocked:
            chosen = (int(rid), region, r0, c0)
            break
        fallback = fallback or (int(rid), region, r0, c0)
    chosen = chosen or fallback
    if chosen is None:
        return None
    rid, region, r0, c0 = chosen
    box = regions[r0 : r0 + region.shape[0], c0 : c0 + region.shape[1]] == rid
    pixels = np.flatnonzero(box)
    pick = pixels[np.linspace(0, pixels.size - 1, min(pixels.size, SAMPLES)).astype(np.int64)]
    rr, cc = np.unravel_index(pick, box.shape)
    samples = np.ravel_multi_index((rr + r0, cc + c0), label.shape)
    memory.append({"samples": samples, "size": int(sizes[rid]), "cls": int(classes[rid])})
    return region, r0, c0


@register("largest_mistake_centre")
def largest_mistake_centre(context: AgentContext) -> Click | None:
    """The point deepest inside the largest mistake: the maximum of the distance transform with the
    image border counted as boundary (as in RITM), which keeps the point inside concave regions."""
    picked = pick_largest_mistake(context, "largest_mistake")
    if picked is None:
        return None
    region, r0, c0 = picked
    row, col = deepest_point(region)  # the box's one-pixel margin is outside the region: same depths
    return click_at(context.label, (row + r0, col + c0))


@register("largest_mistake_border")
def largest_mistake_border(context: AgentContext) -> Click | None:
    """A click on the border of the largest mistake, for networks trained with border clicks
    (``click_position: border``; DISIR Fig. 6): a seeded random pixel of the mistake that lies on a
    ground-truth class border (where training drew its clicks), else on the mistake's own outline.
    The click carries the ground-truth class of the pixel (training drew the pixel's or its
    neighbour's class at random; a user evaluating the network gives the right one)."""
    picked = pick_largest_mistake(context, "largest_mistake")
    if picked is None:
        return None
    region, r0, c0 = picked
    h, w = region.shape
    flat, _ = border_candidates(context.label[r0 : r0 + h, c0 : c0 + w], context.ignore_index)
    on_border = np.zeros(region.size, bool)
    on_border[flat] = True
    candidates = region & on_border.reshape(region.shape)
    if not candidates.any():  # a mistake inside one class: its outline
        candidates = region & ~ndimage.binary_erosion(region, _EIGHT, border_value=0)
    pixels = np.flatnonzero(candidates)
    row, col = np.unravel_index(int(pixels[context.rng.integers(pixels.size)]), region.shape)
    return click_at(context.label, (int(row) + r0, int(col) + c0))


def largest_mistake_click(label: np.ndarray, prediction: np.ndarray, clicked=(), ignore_index: int = 255, memory: dict | None = None) -> Click | None:
    """:func:`largest_mistake_centre` on plain arrays (``memory`` carries the no-repeat records
    across calls on one image; without it only the clicked pixels are excluded)."""
    context = AgentContext(label, prediction, tuple(clicked), ignore_index=ignore_index,
                           memory={} if memory is None else memory)
    return largest_mistake_centre(context)
