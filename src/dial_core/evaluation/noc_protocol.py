"""The satellite-building report's binary NoC protocol (RITM's evaluation on INRIA crops), and the
same crops clicked for the project's DISIR (AC) and DISCA networks, in one tidy schema.

Crops: each test image is cut into ``size``² non-overlapping windows (the report: 500², 100 per
5000² INRIA image), and a crop without any building pixel (label 1) is excluded and counted (the
report drops 560 of 2 500: an empty crop scores IoU 1 with no click). An image side that is not a
multiple of ``size`` leaves a remainder at the right / bottom that is DROPPED, not covered by a
flush window: a flush window would overlap its neighbour (the report's crops do not overlap, so no
pixel is scored twice) and padding would change the crop size the networks see.

Rows (:data:`COLUMNS`), one per click made, clicks counted from 1 (:mod:`.noc`'s convention):
``crop``, ``method``, ``click``, ``iou`` (foreground IoU after that click, :func:`.noc.foreground_iou`),
``iou0`` (foreground IoU of the click-free prediction; NaN for RITM, which never scores it — see
below), ``seconds``, ``click_row``, ``click_col``, ``positive``, ``clicked``.

When the ``ritm`` user has nothing left to click (it returns None: no unclicked error pixel), the
curve STOPS there: no row for that click or the ones after. :func:`.noc.iou_at` then holds the last
value (its "shorter curve keeps its last value"), as RITM's own curves stop early at the target IoU,
and SPC divides by the clicks actually made. A crop the user cannot click even once (the network's
click-free prediction is already right) gets one row, click 1 with that IoU and ``clicked`` False,
so it still counts (NoC 1). :func:`noc_table` can fill curves up to the budget (``clicked`` False)
for IoU-vs-clicks plots; the fill changes no NoC or IoU@k, and SPC counts clicked rows only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dial_core.clicks.agents import AgentContext, next_click
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError
from dial_core.evaluation.noc import BUDGET, foreground_iou, summarise
from dial_core.evaluation.protocols import InteractionConfig, click_protocol
from dial_core.interactive.inference import pad_to_multiple
from dial_core.models.ritm import click_maps
from dial_core.models.segmenter import Segmenter

CROP_SIZE = 500  # the report's crops
THRESHOLD = 0.49  # RITM's pred_thr: building where sigmoid(logits) > 0.49
CLASS_NAMES = ("background", "building")  # label_view: buildings
PREVIOUS = ("mask", "probs")  # what the previous-mask channel receives: the shown mask, or RITM's probabilities
COLUMNS = ["crop", "method", "click", "iou", "iou0", "seconds", "click_row", "click_col", "positive", "clicked"]

Window = tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------
# crops
# --------------------------------------------------------------------------------------------

def building_crops(shape: tuple[int, ...] | np.ndarray, size: int = CROP_SIZE) -> list[Window]:
    """(row, col, size, size) windows of the ``size``² non-overlapping grid of an image of ``shape``
    (a shape, or the label / image array itself), row-major. The incomplete remainder at the right
    and bottom is dropped (module doc); an image smaller than ``size`` on a side has no crop."""
    if size < 1:
        raise ValueError(f"building_crops: size must be ≥ 1, got {size}")
    height, width = (shape.shape if isinstance(shape, np.ndarray) else shape)[:2]
    return [(r, c, size, size) for r in range(0, height - size + 1, size) for c in range(0, width - size + 1, size)]


def keep_crops(label: np.ndarray, windows: Sequence[Window]) -> tuple[list[Window], int]:
    """The windows holding at least one building pixel (label == 1), and how many were excluded:
    the report drops building-free crops, which score IoU 1 without a click."""
    kept = [w for w in windows if np.any(label[w[0] : w[0] + w[2], w[1] : w[1] + w[3]] == 1)]
    return kept, len(windows) - len(kept)


def crop_name(image_id: str, window: Window) -> str:
    """``<id>@<row>_<col>`` (pixel offsets), as the pool's tile samples are named."""
    return f"{image_id}@{window[0]}_{window[1]}"


# --------------------------------------------------------------------------------------------
# RITM
# --------------------------------------------------------------------------------------------

def _row(crop: str, method: str, click_index: int, iou: float, iou0: float, seconds: float, click: Click) -> dict:
    return {"crop": crop, "method": method, "click": click_index, "iou": float(iou), "iou0": float(iou0),
            "seconds": float(seconds), "click_row": click.row, "click_col": click.col,
            "positive": bool(click.cls == 1), "clicked": True}


def _unclicked(crop: str, method: str, iou: float, iou0: float, seconds: float) -> dict:
    """The one row of a crop the user could not click even once (its prediction was already right):
    click 1 holds that IoU, as a shorter curve holds its last value, so the crop still counts."""
    return {**_row(crop, method, 1, iou, iou0, seconds, Click(-1, -1, 0)), "clicked": False}


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] from (H, W, 3): integers are scaled by 1/255, floats taken as given."""
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1))).float()
    return (x / 255.0 if np.issubdtype(np.asarray(image).dtype, np.integer) else x).unsqueeze(0)


@torch.no_grad()
def ritm_crop_protocol(
    model: torch.nn.Module,
    image: np.ndarray,
    label: np.ndarray,
    budget: int = BUDGET,
    radius: float = 5.0,
    threshold: float = THRESHOLD,
    device: torch.device | str | None = None,
    crop: str = "",
    previous: str = "mask",
    ignore_index: int = 255,
    callback: Callable[[int, np.ndarray], None] | None = None,
) -> list[dict]:
    """RITM's ``evaluate_sample`` on one crop: up to ``budget`` clicks of the ``ritm`` user, one row
    per click (from 1).

    The first click is placed on an all-zero prediction and predicted with an all-zero previous
    mask; click k is placed on the prediction after click k-1, and the network sees the disks
    (``radius``) of all clicks so far plus the previous prediction. ``previous="mask"`` feeds the
    thresholded mask shown to the user (the default of the project's RITM training,
    ``binary_prev_mask``); ``"probs"`` feeds sigmoid(logits), as RITM's own predictor does (its
    ``prev_prediction`` is the probability map, as in its trainer). Evaluate a network the way it was
    trained. The prediction is sigmoid(logits) > ``threshold``.

    The click-free prediction is never scored (RITM starts at click 1), so ``iou0`` is NaN. Stops
    when the user has nothing to click (module doc). Inputs are padded to the size multiple of the
    networks (image reflected, click maps with zeros) and outputs cropped back. ``callback(k, mask)``
    receives each prediction (RITM's evaluate_sample has one too: qualitative figures).
    """
    if previous not in PREVIOUS:
        raise ConfigError(f"ritm_crop_protocol: previous must be one of {PREVIOUS}, not {previous!r}")
    if budget < 1:
        raise ValueError(f"ritm_crop_protocol: budget must be ≥ 1, got {budget}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    height, width = label.shape
    x = pad_to_multiple(_image_tensor(image).to(device))
    fed = np.zeros((height, width), np.float32)  # the previous-mask channel: all zero before click 1
    prediction = np.zeros((height, width), np.uint8)
    clicks: list[Click] = []
    rows: list[dict] = []
    for k in range(1, budget + 1):
        start = time.perf_counter()
        click = next_click("ritm", AgentContext(label, prediction, tuple(clicks), ignore_index=ignore_index,
                                                step=k, budget=budget, n_classes=2))
        if click is None:
            break
        clicks.append(click)
        disks = click_maps(((c.row, c.col, c.cls == 1) for c in clicks), (height, width), radius)
        maps = torch.from_numpy(np.concatenate([disks, fed[None]])).unsqueeze(0).to(device)
        maps = F.pad(maps, (0, x.shape[-1] - width, 0, x.shape[-2] - height))
        logits, _ = model(x, maps)
        probs = torch.sigmoid(logits[0, 0, :height, :width]).float().cpu().numpy()
        prediction = (probs > threshold).astype(np.uint8)
        fed = probs if previous == "probs" else prediction.astype(np.float32)
        iou = foreground_iou(label, prediction, ignore_index)
        rows.append(_row(crop, "ritm", k, iou, float("nan"), time.perf_counter() - start, click))
        if callback is not None:
            callback(k, prediction)
    return rows or [_unclicked(crop, "ritm", foreground_iou(label, prediction, ignore_index), float("nan"), 0.0)]


# --------------------------------------------------------------------------------------------
# DISIR (AC) / DISCA networks on the same crops
# --------------------------------------------------------------------------------------------

def _foreground(row: Mapping, name: str) -> float:
    """Class 1's IoU of a click_protocol row: the confusion-matrix IoU equals foreground_iou, except
    that a class absent from label and prediction is NaN there and 1.0 in foreground_iou."""
    value = float(row[f"iou_{name}"])
    return 1.0 if np.isnan(value) else value


def network_crop_protocol(
    model: Segmenter,
    image: np.ndarray,
    label: np.ndarray,
    method: str,
    cfg: InteractionConfig,
    rng: np.random.Generator,
    budget: int = BUDGET,
    crop: str = "",
    class_names: Sequence[str] = CLASS_NAMES,
) -> list[dict]:
    """A 2-class network (``label_view: buildings``) on one crop, clicked by the ``ritm`` user through
    :func:`~dial_core.evaluation.protocols.click_protocol` (AC, DISCA or an ablation arm; ``cfg`` as
    :func:`dial_core.steps.interaction_config` builds it for ``method``; its agent is replaced by
    ``ritm``), in :func:`ritm_crop_protocol`'s rows.

    click_protocol's step 0 (the click-free prediction) has no row, so the curves compare click for
    click with RITM's; its IoU is kept as ``iou0`` on every row (the "Not interactive" score of the
    same network) and its seconds are added to click 1's, so a crop's seconds sum to its wall time as
    RITM's SPC counts. The curve stops at the first click the user could not make (module doc).
    """
    if len(class_names) != 2 or model.spec.n_classes != 2:
        raise ConfigError(f"network_crop_protocol: the NoC protocol is binary; the network has {model.spec.n_classes} "
                          f"classes and the names are {list(class_names)}; use a network trained on label_view: buildings")
    if cfg.method != method:
        raise ConfigError(f"network_crop_protocol: cfg is for method {cfg.method!r}, not {method!r}; "
                          "build it with interaction_config(method, ...)")
    steps = click_protocol(model, image, label, list(class_names), budget, replace(cfg, agent="ritm"), rng, image_id=crop)
    name = class_names[1]
    iou0, rows = _foreground(steps[0], name), []
    for step in steps[1:]:
        if step["click_class"] < 0:  # nothing left to click: the prediction stays, the curve stops
            break
        click = Click(int(step["click_row"]), int(step["click_col"]), int(step["click_class"]))
        seconds = step["seconds"] + (steps[0]["seconds"] if step["step"] == 1 else 0.0)
        rows.append(_row(crop, method, int(step["step"]), _foreground(step, name), iou0, seconds, click))
    return rows or [_unclicked(crop, method, iou0, iou0, steps[0]["seconds"] + steps[1]["seconds"])]


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------

def noc_table(rows: Iterable[Mapping], excluded: int = 0, fill_to: int | None = None) -> pd.DataFrame:
    """Tidy table, one row per (method, crop, click), sorted; ``excluded`` (building-free crops) rides
    in ``table.attrs`` for :func:`noc_summary`. ``fill_to``: extend each curve to that many clicks
    with its last IoU (``clicked`` False), for mean-IoU-vs-clicks plots (module doc)."""
    table = pd.DataFrame(list(rows), columns=COLUMNS)
    if table.duplicated(["method", "crop", "click"]).any():
        raise ValueError("noc_table: a (method, crop, click) appears twice; give each crop a distinct name")
    if fill_to is not None and len(table):
        extra = []
        for _, curve in table.groupby(["method", "crop"], sort=False):
            last = curve.loc[curve["click"].idxmax()]
            extra += [{**last.to_dict(), "click": k, "seconds": 0.0, "click_row": -1, "click_col": -1,
                       "positive": False, "clicked": False} for k in range(int(last["click"]) + 1, fill_to + 1)]
        table = pd.concat([table, pd.DataFrame(extra, columns=COLUMNS)], ignore_index=True) if extra else table
    table = table.sort_values(["method", "crop", "click"], kind="stable", ignore_index=True)
    table.attrs["excluded"] = int(excluded)
    return table


def noc_summary(table: pd.DataFrame, thresholds: Sequence[float] = (0.8, 0.85, 0.9), budget: int = BUDGET,
                excluded: int | None = None) -> dict[str, float]:
    """The report's table for ONE method's crops: :func:`.noc.summarise` (NoC, ≥B@t, Avg_B IoU …,
    ``spc`` over the clicks made) plus ``excluded`` (building-free crops; default ``table.attrs``)
    and ``iou0`` (mean click-free IoU, NaN for RITM: its "Not interactive" counterpart)."""
    methods = table["method"].unique()
    if len(methods) != 1:
        raise ValueError(f"noc_summary: one method per summary, the table holds {list(methods)}; filter it first")
    curves = {crop: group.sort_values("click")["iou"].tolist() for crop, group in table.groupby("crop", sort=False)}
    clicked = table[table["clicked"].astype(bool)]
    out = summarise(curves, thresholds, budget, seconds=float(table["seconds"].sum()), clicks=len(clicked))
    out["excluded"] = float(table.attrs.get("excluded", 0) if excluded is None else excluded)
    iou0 = table.groupby("crop")["iou0"].first().to_numpy(np.float64)
    out["iou0"] = float(np.nanmean(iou0)) if np.isfinite(iou0).any() else float("nan")
    return out
