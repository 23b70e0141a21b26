"""Click-count metrics of interactive segmentation, RITM-style (binary) and DIAL-style (mIoU).

Conventions (RITM ``isegm/inference/utils.py``; the satellite-building report, its Table 1):

- Binary curves: ``ious[0]`` is the foreground IoU after the FIRST click (RITM never scores the
  click-free prediction), so clicks count from 1. The budget is 20 clicks.
- ``noc``: 1 + the index of the first IoU ≥ t within the first ``budget`` clicks, else ``budget``.
- ``over_budget`` (RITM's ≥20@t, "NoF"): noc == budget. It ALSO counts a curve that reaches t
  exactly at click 20. ``never_reached`` is the literal reading (still < t after 20 clicks, the
  report's wording); the two differ only by the curves reaching t at click 20 exactly.
- Avg20 IoU (the report): the IoU after click 20, mean and std (ddof 0) over crops. A curve shorter
  than k clicks (RITM stops once the target IoU is reached) keeps its last value.
- IoU here is the FOREGROUND IoU (class 1 only; 1.0 when the union is empty — RITM's ``get_iou``
  gives 0/0 = NaN there; the report drops crops without buildings). The multi-class tables score
  mIoU over classes, background included, and their curves start with step 0 = no click:
  :func:`noc_miou` counts those (0 when already reached without a click).

Names in the tables, so the two families never mix:

- binary (the RITM study, :mod:`dial_core.evaluation.noc_protocol`, ``reports/ritm_table1.*``):
  ``noc{B}@{t}``, ``over{B}@{t}`` (RITM's ≥B@t), ``never{B}@{t}``, ``avg{B}_iou``, ``iou@k``, with
  B = ``ritm.evaluation.budget`` (20) and t in points (80, 85, 90);
- multi-class (``report.summaries.click_summary``, ``reports/metrics/evaluation.json``,
  ``reports/summary.md``): ``noc_miou@{t}`` (:func:`noc_miou`, clicks from step 0) and
  ``never_miou@{t}`` (still below t after the budget), with the budget ``report.noc_budget`` (20)
  cut to the clicks the run made (column ``noc_budget``), thresholds ``report.noc_thresholds``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dial_core.evaluation.metrics import number_of_clicks

BUDGET = 20
IOU_AT = (1, 2, 3, 5, 10, 20)


def foreground_iou(label: np.ndarray, prediction: np.ndarray, ignore_index: int = 255) -> float:
    """IoU of class 1 (building) alone, pixels labelled ``ignore_index`` excluded from both masks
    (as RITM's ``get_iou``). Both masks empty → 1.0 (nothing to find, nothing wrongly found) rather
    than RITM's NaN, so a curve stays defined; drop such crops upstream to match the report."""
    valid = label != ignore_index
    gt, pred = (label == 1) & valid, (prediction == 1) & valid
    union = int(np.count_nonzero(gt | pred))
    return 1.0 if union == 0 else int(np.count_nonzero(gt & pred)) / union


def _first(ious: Sequence[float], budget: int) -> np.ndarray:
    if budget < 1:
        raise ValueError(f"budget must be ≥ 1, got {budget}")
    return np.asarray(ious, np.float64)[:budget]


def noc(ious: Sequence[float], threshold: float, budget: int = BUDGET) -> int:
    """NoC{budget}@t: clicks (from 1) until the IoU first reaches ``threshold``, ``budget`` if it
    does not within the first ``budget`` clicks (a lower bound of the true count)."""
    reached = np.flatnonzero(_first(ious, budget) >= threshold)
    return int(reached[0]) + 1 if reached.size else budget


def over_budget(ious: Sequence[float], threshold: float, budget: int = BUDGET) -> bool:
    """RITM's ≥{budget}@t: noc == budget, which includes reaching t exactly at click ``budget``."""
    return noc(ious, threshold, budget) == budget


def never_reached(ious: Sequence[float], threshold: float, budget: int = BUDGET) -> bool:
    """Still below ``threshold`` after ``budget`` clicks (the literal ≥{budget}@t; excludes a curve
    reaching t at click ``budget``, which :func:`over_budget` counts)."""
    return not bool(np.any(_first(ious, budget) >= threshold))


def iou_at(ious: Sequence[float], k: int) -> float:
    """The IoU after the k-th click (k from 1); a shorter curve gives its last value (it stopped
    early, having reached the target)."""
    if k < 1 or len(ious) == 0:
        raise ValueError(f"need k ≥ 1 and a non-empty curve (k={k}, {len(ious)} IoUs)")
    return float(ious[min(k, len(ious)) - 1])


def avg_iou(ious: Sequence[float], budget: int = BUDGET) -> float:
    """One crop's share of the report's Avg{budget} IoU: the IoU after click ``budget`` (its text:
    "the number of clicks after which we compute the IoU")."""
    return iou_at(ious, budget)


def curve_mean_iou(ious: Sequence[float], budget: int = BUDGET) -> float:
    """Mean of the first ``budget`` IoUs, a short curve held at its last value (the normalised area
    under the IoU-vs-clicks curve; rewards early gains; NOT the report's Avg{budget} IoU)."""
    return float(np.mean([iou_at(ious, k) for k in range(1, budget + 1)]))


def summarise(curves: Mapping[str, Sequence[float]], thresholds: Sequence[float] = (0.8, 0.85, 0.9), budget: int = BUDGET,
              seconds: float | None = None, clicks: int | None = None) -> dict[str, float]:
    """The RITM / report table over crops (``curves``: crop id → IoU after clicks 1, 2, …):
    ``noc{B}@t`` mean NoC, ``over{B}@t`` share with noc == B (RITM's ≥B@t), ``never{B}@t`` share
    still below t after B clicks, ``avg{B}_iou`` / ``avg{B}_iou_std`` the IoU after click B (mean,
    std ddof 0), ``curve{B}_iou`` mean of :func:`curve_mean_iou`, ``iou@k`` means for k ≤ B of
    (1, 2, 3, 5, 10, 20), ``n`` crops, and ``spc`` = seconds / clicks (RITM's seconds per click;
    ``clicks`` defaults to the total curve length, as RITM counts) when ``seconds`` is given."""
    if not curves:
        raise ValueError("no IoU curves to summarise")
    values = list(curves.values())
    out: dict[str, float] = {"n": float(len(values))}
    for t in thresholds:
        key = f"{budget}@{round(t * 100)}"
        out[f"noc{key}"] = float(np.mean([noc(c, t, budget) for c in values]))
        out[f"over{key}"] = float(np.mean([over_budget(c, t, budget) for c in values]))
        out[f"never{key}"] = float(np.mean([never_reached(c, t, budget) for c in values]))
    final = np.array([avg_iou(c, budget) for c in values])
    out[f"avg{budget}_iou"], out[f"avg{budget}_iou_std"] = float(final.mean()), float(final.std())
    out[f"curve{budget}_iou"] = float(np.mean([curve_mean_iou(c, budget) for c in values]))
    for k in (k for k in IOU_AT if k <= budget):
        out[f"iou@{k}"] = float(np.mean([iou_at(c, k) for c in values]))
    if seconds is not None:
        total = sum(len(c) for c in values) if clicks is None else clicks
        out["spc"] = float(seconds) / total if total else float("nan")
    return out


def noc_miou(curve: Sequence[float], threshold: float, budget: int = BUDGET) -> int:
    """Multi-class NoC on an mIoU curve whose ``curve[0]`` is the score BEFORE any click (DIAL's
    tables, step 0): the first step 0 … ``budget`` reaching ``threshold`` = the clicks needed (0 when
    the click-free prediction already reaches it), else ``budget``. It is
    :func:`~dial_core.evaluation.metrics.number_of_clicks` on ``curve[:budget + 1]`` (that one does
    not cut the curve); it equals ``noc(curve[1:], threshold, budget)`` unless step 0 already
    reaches the threshold (0 here, ≥ 1 there). ``report.summaries`` counts ≥B@85 literally
    (never reached by step B), like :func:`never_reached`, not like :func:`over_budget`."""
    if budget < 1:
        raise ValueError(f"budget must be ≥ 1, got {budget}")
    return number_of_clicks(np.asarray(curve, np.float64)[: budget + 1], threshold, budget)
