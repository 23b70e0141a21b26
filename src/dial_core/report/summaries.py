"""Numbers of the report, computed from the tidy tables (mean over images)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dial_core.evaluation.metrics import number_of_clicks

GROUP = ["dataset", "model", "method", "acquisition", "encoding", "agent"]


def mean_curves(frame: pd.DataFrame, value: str = "miou") -> pd.DataFrame:
    """Mean of ``value`` over images for each experiment and step."""
    return frame.groupby(GROUP + ["step"], as_index=False)[value].mean()


def click_summary(frame: pd.DataFrame, thresholds: Sequence[float]) -> pd.DataFrame:
    """Per experiment: initial and final mIoU, gain, and NoC@t (mean over images, budget = clicks)."""
    budget = int(frame["step"].max())
    rows = []
    for keys, group in frame.groupby(GROUP):
        per_image = {img: g.sort_values("step")["miou"].to_numpy() for img, g in group.groupby("image")}
        first = np.mean([c[0] for c in per_image.values()])
        last = np.mean([c[-1] for c in per_image.values()])
        row = dict(zip(GROUP, keys), initial_miou=first, final_miou=last, gain=last - first, clicks=budget)
        for t in thresholds:
            row[f"noc@{round(t * 100)}"] = float(np.mean([number_of_clicks(c, t, budget) for c in per_image.values()]))
        row[f">={budget}@85"] = float(np.mean([number_of_clicks(c, 0.85, budget + 1) > budget for c in per_image.values()]))
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
