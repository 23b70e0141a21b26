"""Numbers of the report, computed from the tidy tables (mean over images)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dial_core.evaluation.noc import BUDGET, noc_miou

GROUP = ["dataset", "model", "method", "acquisition", "encoding", "agent"]


def mean_curves(frame: pd.DataFrame, value: str = "miou") -> pd.DataFrame:
    """Mean of ``value`` over images for each experiment and step."""
    return frame.groupby(GROUP + ["step"], as_index=False)[value].mean()


def click_summary(frame: pd.DataFrame, thresholds: Sequence[float], budget: int = BUDGET) -> pd.DataFrame:
    """Per experiment: initial and final mIoU, gain, and the multi-class NoC on mIoU (conventions in
    :mod:`dial_core.evaluation.noc`): ``noc_miou@t`` mean :func:`noc_miou` (step 0 = no click, so 0
    when the click-free prediction reaches t), ``never_miou@t`` share of images still below t after
    ``noc_budget`` clicks. ``noc_budget`` = ``report.noc_budget`` (20), cut to the clicks the run made
    when it made fewer (a curve is not known beyond them); ``clicks`` = the run's clicks."""
    clicks = int(frame["step"].max())
    cut = max(1, min(int(budget), clicks))
    rows = []
    for keys, group in frame.groupby(GROUP):
        per_image = {img: g.sort_values("step")["miou"].to_numpy() for img, g in group.groupby("image")}
        first = np.mean([c[0] for c in per_image.values()])
        last = np.mean([c[-1] for c in per_image.values()])
        row = dict(zip(GROUP, keys), initial_miou=first, final_miou=last, gain=last - first, clicks=clicks, noc_budget=cut)
        for t in thresholds:
            row[f"noc_miou@{round(t * 100)}"] = float(np.mean([noc_miou(c, t, cut) for c in per_image.values()]))
        for t in thresholds:
            row[f"never_miou@{round(t * 100)}"] = float(np.mean([not np.any(c[: cut + 1] >= t) for c in per_image.values()]))
        rows.append(row)
    return pd.DataFrame(rows)


def patch_summary(frame: pd.DataFrame, checkpoints: Sequence[int] | None = None) -> pd.DataFrame:
    """Per experiment: mIoU after a few patch counts, and the mean gain over the whole curve
    (normalised area between the curve and the initial mIoU: rewards early improvements)."""
    curves = mean_curves(frame)
    last = int(curves["step"].max())
    steps = sorted(set(checkpoints or [1, max(1, last // 4), max(1, last // 2), last]))
    rows = []
    for keys, group in curves.groupby(GROUP):
        curve = group.set_index("step")["miou"]
        row = dict(zip(GROUP, keys), initial_miou=float(curve.loc[0]))
        row.update({f"miou@{s}": float(curve.get(s, np.nan)) for s in steps})
        row["mean_gain"] = float((curve.loc[1:] - curve.loc[0]).mean())
        rows.append(row)
    return pd.DataFrame(rows)
