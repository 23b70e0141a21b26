"""DIAL Fig. 9 and Appendix B (Figs. 11-12) from the crop tables (:mod:`dial_core.evaluation.crops`).

The crop table has one row per (crop, method) with the crop's initial accuracy, the size of the
mistake the click fell in and the mIoU gain. Fig. 9 pairs AC and DISCA on the same crops and bins
them by the share of the crop the corrected mistake covers and by the initial accuracy; App. B
compares the simulated users by their mean gain.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

CROP_KEYS = ["dataset", "image", "crop", "model", "agent", "seed"]  # one crop clicked by one user
IN_MISTAKES = ("random_in_mistake", "largest_mistake_centre", "uncertain_in_mistake")  # DIAL Fig. 11
ANYWHERE = ("uncertain_anywhere", "random_anywhere")  # DIAL Fig. 12
PAPER_NAMES = {  # how DIAL App. B names each user
    "random_in_mistake": "random", "largest_mistake_centre": "max", "uncertain_in_mistake": "uncertainty",
    "uncertain_anywhere": "uncertainty", "random_anywhere": "random",
}
METHOD_LABELS = {"ac": "AC-only", "disca": "DISCA"}


def _edges(edges: Sequence[float], what: str) -> list[float]:
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"mistake_bins: {what} must be at least two strictly increasing numbers, not {edges}")
    return edges


def _labels(edges: list[float]) -> list[str]:
    """Interval names of the bins: the first closed on both sides (``include_lowest``), the others on the right."""
    return [f"{'[' if i == 0 else '('}{a:g}, {b:g}]" for i, (a, b) in enumerate(pairwise(edges))]


def mistake_bins(frame: pd.DataFrame, size_edges: Sequence[float], accuracy_edges: Sequence[float],
                 methods: tuple[str, str] = ("ac", "disca"), size_column: str = "mistake_share",
                 agent: str | None = None) -> pd.DataFrame:
    """DIAL Fig. 9 as a table: per (mistake-size bin × initial-accuracy bin) of the clicked crops,
    ``n``, each method's mean gain, the share of crops where the second method beat the first and
    ``best`` (the method with the higher mean gain; "tie" when equal; "" for an empty bin).

    ``size_column``: ``mistake_share`` (share of the crop, comparable across crop sizes; default)
    or ``mistake_size`` (pixels). Bins are closed on the right, the first one also on the left, and
    rendered as strings ("[0, 0.01]", "(0.01, 0.05]"); every bin of the grid has a row, in the order of the edges. ``agent``:
    keep only that user's crops (default: all rows; Fig. 9 uses one user, DIAL's "max").
    """
    size_edges, accuracy_edges = _edges(size_edges, "size_edges"), _edges(accuracy_edges, "accuracy_edges")
    first, second = methods
    data = frame[frame["clicked"].astype(bool) & frame["method"].isin(methods)]
    if agent is not None:
        data = data[data["agent"] == agent]
    keys = [k for k in CROP_KEYS if k in data.columns]
    paired = data.pivot_table(index=[*keys, size_column, "accuracy0"], columns="method", values="gain", aggfunc="first")
    paired = paired.reindex(columns=list(methods)).dropna().reset_index()
    size_bin = pd.cut(paired[size_column], size_edges, labels=_labels(size_edges), include_lowest=True)
    accuracy_bin = pd.cut(paired["accuracy0"], accuracy_edges, labels=_labels(accuracy_edges), include_lowest=True)
    grouped = paired.assign(size_bin=size_bin, accuracy_bin=accuracy_bin, wins=paired[second] > paired[first])
    table = grouped.groupby(["size_bin", "accuracy_bin"], observed=False).agg(
        n=(first, "size"), **{f"{first}_gain": (first, "mean"), f"{second}_gain": (second, "mean")},
        **{f"{second}_better": ("wins", "mean")}).reset_index()
    a, b = table[f"{first}_gain"], table[f"{second}_gain"]
    best = np.where(np.isclose(a, b, rtol=0, atol=1e-12), "tie", np.where(b > a, second, first))
    table["best"] = np.where(table["n"] > 0, best, "")
    table["size_bin"] = table["size_bin"].astype(str)  # "[0, 0.01]", "(0.01, 0.05]" ... in the order of the edges
    table["accuracy_bin"] = table["accuracy_bin"].astype(str)
    return table


def fig9_heatmap(table: pd.DataFrame, methods: tuple[str, str] = ("ac", "disca")) -> plt.Figure:
    """DIAL Fig. 9: mean gain difference (second − first method, IoU points) per bin of
    :func:`mistake_bins`, x = initial accuracy, y = size of the corrected mistake (small at the
    bottom), diverging colours centred at 0, each cell annotated with the better method and n."""
    first, second = methods
    rows = list(dict.fromkeys(table["size_bin"]))[::-1]
    cols = list(dict.fromkeys(table["accuracy_bin"]))
    grid = table.set_index(["size_bin", "accuracy_bin"])
    diff = 100 * (grid[f"{second}_gain"] - grid[f"{first}_gain"])
    values = diff.unstack().reindex(index=rows, columns=cols)
    labels = grid.apply(lambda r: f"{METHOD_LABELS.get(r['best'], r['best'])}\nn={int(r['n'])}" if r["n"] else "", axis=1)
    annot = labels.unstack().reindex(index=rows, columns=cols)
    limit = float(np.nanmax(np.abs(values.to_numpy()))) if np.isfinite(values.to_numpy()).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 3, 0.9 * len(rows) + 2))
    sns.heatmap(values, annot=annot.to_numpy(), fmt="", cmap="RdBu_r", center=0, vmin=-limit, vmax=limit,
                cbar_kws={"label": f"mean gain {METHOD_LABELS.get(second, second)} − {METHOD_LABELS.get(first, first)} (IoU points)"},
                linewidths=0.5, ax=ax)
    ax.set(xlabel="initial accuracy of the network on the crop", ylabel="corrected mistake (share of the crop)",
           title=f"{METHOD_LABELS.get(first, first)} vs {METHOD_LABELS.get(second, second)}: size of the corrected "
                 "mistake and initial accuracy (DIAL Fig. 9)")
    fig.tight_layout()
    return fig


def appendix_b_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the mIoU gain per (agent, method), over every crop (a user that
    found nothing to click counts with gain 0, so all users are averaged over the same crops), with
    the number of crops and of clicked ones."""
    grouped = frame.groupby(["agent", "method"], sort=True)
    table = grouped.agg(mean_gain=("gain", "mean"), std_gain=("gain", "std"), n=("gain", "size"),
                        n_clicked=("clicked", "sum")).reset_index()
    table["n_clicked"] = table["n_clicked"].astype(int)
    return table


def appendix_b_figure(frame: pd.DataFrame) -> plt.Figure:
    """DIAL App. B: mean gain (IoU points, ± s.e.) per simulated user, AC and DISCA side by side;
    left the users that know the mistakes (Fig. 11), right those that do not (Fig. 12). Users
    absent from ``frame`` are skipped, and a panel with none of its users is left out."""
    panels = [(title, [a for a in agents if a in set(frame["agent"])])
              for title, agents in (("in mistakes (DIAL Fig. 11)", IN_MISTAKES), ("anywhere (DIAL Fig. 12)", ANYWHERE))]
    panels = [(title, agents) for title, agents in panels if agents]
    if not panels:
        raise ValueError(f"appendix_b_figure: none of the App. B users ({', '.join(IN_MISTAKES + ANYWHERE)}) in the table")
    data = frame.assign(gain_points=100 * frame["gain"], label=frame["method"].map(lambda m: METHOD_LABELS.get(m, m)))
    hue_order = list(dict.fromkeys(METHOD_LABELS.get(m, m) for m in sorted(frame["method"].unique(), key=_method_order)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False, sharey=True)
    for ax, (title, agents) in zip(axes[0], panels):
        sns.barplot(data=data[data["agent"].isin(agents)], x="agent", y="gain_points", hue="label", order=agents,
                    hue_order=hue_order, errorbar="se", ax=ax)
        ax.set_xticks(range(len(agents)), [f"{PAPER_NAMES.get(a, a)}\n({a})" for a in agents], fontsize=8)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="simulated user", ylabel="mean mIoU gain of one annotation (IoU points)", title=title)
        ax.legend(title=None)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("One annotation per crop: gain by simulated user (DIAL App. B)")
    fig.tight_layout()
    return fig


def _method_order(name: str) -> tuple[int, str]:
    order = list(METHOD_LABELS)
    return (order.index(name) if name in order else len(order), name)
