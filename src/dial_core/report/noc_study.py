"""The satellite-building report's Table 1 and Figs. 7 / 8 from the RITM study's tidy table
(:data:`dial_core.ritm_steps.TIDY`: one row per model, experiment, crop and click).

- Table 1: :func:`~dial_core.evaluation.noc_protocol.noc_summary` per (model, experiment): NoC{B}@t,
  RITM's ≥{B}@t (``over``), the literal share never reaching t (``never``), Avg{B} IoU ± std,
  IoU@k, seconds per click, crops scored and excluded; the report's numbers beside ours
  (``report_*`` columns, from ``paper_numbers.csv``, IoU and shares as fractions like ours).
- Fig. 7: the mean IoU after each click, one line per experiment (each crop's curve held at its last
  value up to the budget, so every click averages the same crops).
- Fig. 8: the IoU gained by the n-th click, mean IoU(n) − mean IoU(n − 1) for n = 2 … B: per-click
  increments, not the cumulative gain. Click 1 has no increment (RITM never scores the click-free
  prediction), and a network that ignores clicks (``not_interactive``) is left out (all zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dial_core.evaluation.noc_protocol import COLUMNS, noc_summary, noc_table  # noqa: E402
from dial_core.ritm_study import EXPERIMENTS, RITM_MODEL, experiment_label  # noqa: E402

PAPER = "Satellite NoC report"
ITEM = f"{PAPER} Table 1"
# paper_numbers.csv metric -> how our summary names it (B: budget, T: threshold in points) and its scale there
PAPER_METRICS = {"noc": ("noc{B}@{T}", 1.0), "over_budget_share": ("over{B}@{T}", 100.0), "avg_iou": ("avg{B}_iou", 100.0),
                 "avg_iou_std": ("avg{B}_iou_std", 100.0)}


def _order(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, experiment) pairs: RITM experiments in EXPERIMENTS order, then the networks' methods."""
    pairs = list(dict.fromkeys(zip(frame["model"], frame["experiment"])))
    rank = {e: i for i, e in enumerate(EXPERIMENTS)}
    return sorted(pairs, key=lambda p: (p[0] != RITM_MODEL, rank.get(p[1], len(rank)), p[0], p[1]))


def _curves(frame: pd.DataFrame, model: str, experiment: str, budget: int | None = None) -> pd.DataFrame:
    group = frame[(frame["model"] == model) & (frame["experiment"] == experiment)]
    excluded = int(group["excluded"].iloc[0]) if "excluded" in group and len(group) else 0
    return noc_table(group[COLUMNS].to_dict(orient="records"), excluded=excluded, fill_to=budget)


def budget_of(frame: pd.DataFrame) -> int:
    budgets = frame["budget"].unique()
    if len(budgets) != 1:
        raise ValueError(f"the RITM tables were made with different budgets {sorted(budgets)}; re-run them with one ritm.evaluation.budget")
    return int(budgets[0])


def table_1(frame: pd.DataFrame, thresholds: Sequence[float]) -> pd.DataFrame:
    """One row per (model, experiment): ``label`` and :func:`noc_summary`'s keys."""
    budget = budget_of(frame)
    rows = []
    for model, experiment in _order(frame):
        summary = noc_summary(_curves(frame, model, experiment), thresholds, budget)
        rows.append({"model": model, "experiment": experiment, "label": experiment_label(model, experiment), "budget": budget, **summary})
    return pd.DataFrame(rows)


def _setting(setting: str) -> dict[str, str]:
    return dict(part.strip().split("=", 1) for part in str(setting).split(";") if "=" in part)


def paper_beside(table: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the report's Table 1 values as ``report_<our column>`` (same scale as ours:
    fractions), for the RITM experiments it ran; NaN elsewhere."""
    rows = paper[(paper["paper"] == PAPER) & (paper["table_or_figure"] == "Table 1")]
    out = table.copy()
    for _, row in rows.iterrows():
        if row["metric"] not in PAPER_METRICS:
            continue
        pattern, scale = PAPER_METRICS[row["metric"]]
        setting = _setting(row["setting"])
        threshold = round(float(setting.get("iou", "nan")) * 100) if "iou" in setting else None
        column = pattern.format(B=setting.get("clicks", 20), T=threshold)
        if int(setting.get("clicks", 20)) == 0:
            column = "iou@1"  # a click-free score: the not-interactive network's (its curve is flat)
        target = f"report_{column}"
        if target not in out:
            out[target] = np.nan
        mask = (out["model"] == RITM_MODEL) & (out["experiment"] == row["method"])
        out.loc[mask, target] = float(row["value"]) / scale
    return out


def _cell(value: float, digits: int = 3) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.2f}"


def _with_report(row: pd.Series, column: str) -> str:
    ours = _cell(row.get(column, np.nan))
    report = row.get(f"report_{column}", np.nan)
    return ours if report is None or not np.isfinite(report) else f"{ours} (report {_cell(report)})"


def table_1_markdown(table: pd.DataFrame, thresholds: Sequence[float], scale: str = "") -> str:
    """Table 1 as the report prints it, ours first and the report's value in parentheses."""
    budget = int(table["budget"].iloc[0])
    points = [round(t * 100) for t in thresholds]
    header = (["experiment"] + [f"NoC{budget}@{p}" for p in points] + [f"≥{budget}@{p}" for p in points]
              + [f"Avg{budget} IoU", "IoU@1", "crops", "excluded", "s/click"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        avg = f"{_with_report(row, f'avg{budget}_iou')} ± {_cell(row[f'avg{budget}_iou_std'])}"
        cells = ([row["label"]] + [_with_report(row, f"noc{budget}@{p}") for p in points]
                 + [_with_report(row, f"over{budget}@{p}") for p in points]
                 + [avg, _with_report(row, "iou@1"), f"{int(row['n'])}", f"{int(row['excluded'])}", _cell(row.get("spc", np.nan))])
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"# The satellite report's Table 1 (RITM on building crops), NoC{budget}", "", scale, "",
        (f"NoC{budget}@t: clicks (from 1) until the foreground IoU reaches t, {budget} if never; ≥{budget}@t: share of crops "
         f"with NoC = {budget} (RITM's count, also crops reaching t exactly at click {budget}); Avg{budget} IoU: IoU after click "
         f"{budget}, mean ± std over crops. Building-free crops are excluded (count in `excluded`). In parentheses: the "
         "report's Table 1 (INRIA, 500² crops, RITM's natural-image weights for No training). The not-interactive "
         "network ignores clicks: its row holds its click-free IoU at every click; its parenthesis is the ≈ 0.82 IoU the "
         "report quotes for published supervised models (its text, not its Table 1)."), "",
    ]
    return "\n".join(notes + lines) + "\n"


def iou_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean IoU after each click 1 … budget per (model, experiment), curves held at their last value."""
    budget = budget_of(frame)
    parts = []
    for model, experiment in _order(frame):
        filled = _curves(frame, model, experiment, budget)
        mean = filled.groupby("click", as_index=False)["iou"].mean()
        parts.append(mean.assign(model=model, experiment=experiment, label=experiment_label(model, experiment)))
    return pd.concat(parts, ignore_index=True)[["model", "experiment", "label", "click", "iou"]]


def click_increments(curves: pd.DataFrame) -> pd.DataFrame:
    """Fig. 8's values from :func:`iou_curves`: the gain of the n-th click, mean IoU(n) − mean IoU(n − 1),
    n ≥ 2 (not cumulative); experiments that ignore clicks are left out."""
    parts = []
    for (model, experiment), curve in curves.groupby(["model", "experiment"], sort=False):
        if model == RITM_MODEL and experiment in EXPERIMENTS and not EXPERIMENTS[experiment].interactive:
            continue
        curve = curve.sort_values("click")
        gain = curve["iou"].diff()
        parts.append(curve.assign(gain=gain).iloc[1:][["model", "experiment", "label", "click", "gain"]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["model", "experiment", "label", "click", "gain"])


def fig_7(curves: pd.DataFrame) -> plt.Figure:
    """Report Fig. 7: mean IoU vs clicks, one line per experiment."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=curves, x="click", y="iou", hue="label", marker="o", ax=ax)
    ax.set(xlabel="clicks per crop", ylabel="mean foreground IoU over crops", title="IoU vs clicks (report Fig. 7)")
    ax.set_xticks(sorted(curves["click"].unique())[::2] if curves["click"].nunique() > 10 else sorted(curves["click"].unique()))
    ax.grid(alpha=0.3)
    ax.legend(title=None, fontsize=8)
    fig.tight_layout()
    return fig


def fig_8(increments: pd.DataFrame) -> plt.Figure:
    """Report Fig. 8: the IoU gained by the n-th click (per-click increments), one line per experiment."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(data=increments, x="click", y="gain", hue="label", marker="o", ax=ax)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="n (the n-th click)", ylabel="mean IoU(n) − mean IoU(n − 1)", title="IoU gained by the n-th click (report Fig. 8)")
    ax.grid(alpha=0.3)
    ax.legend(title=None, fontsize=8)
    fig.tight_layout()
    return fig


def scale_line(rows: pd.DataFrame, trained: Sequence[dict], network: dict | None, training: dict | None = None) -> str:
    """What our run is, stated before Table 1: data, crops, network and training budget."""
    crops = int(rows.groupby(["model", "experiment"])["crop"].nunique().max())
    parts = [f"dataset `{rows['dataset'].iloc[0]}`", f"{rows['image'].nunique()} test images",
             f"{crops} crops scored ({int(rows['excluded'].iloc[0])} building-free excluded)", f"budget {budget_of(rows)} clicks"]
    if network:
        parts.append(f"RITM {network.get('arch')}-{network.get('encoder')}")
    if training:
        parts.append(f"{training.get('epochs')} epochs of {training.get('crops_per_epoch')} crops of {training.get('crop_size')}²")
    sources = sorted({str(m.get("dataset")) for m in trained if m.get("experiment") == "from_scratch" and m.get("dataset")}
                     - {str(rows["dataset"].iloc[0])})
    if sources:
        parts.append(f"source model trained on `{', '.join(sources)}`")
    origins = [m.get("origin") for m in trained if m.get("experiment") == "no_training" and m.get("origin")]
    if origins:
        parts.append(f"no training = {origins[0]}")
    return "Our run: " + ", ".join(parts) + "."
