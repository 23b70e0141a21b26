"""Area Disagreement's figures and table from the pool-loop rows (one row per dataset, strategy,
seed and iteration): Fig. 3 (test mIoU per iteration with a 95 % band over seeds), Table I
(iterations and share of the pool needed to reach a fraction of the full-pool mIoU) and Fig. 4
(objects and classes per image of each iteration's selected batch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from dial_core.errors import DataError

CURVE_KEYS = ["dataset", "strategy", "iteration"]
THRESHOLDS = (0.9, 0.95, 0.975)  # AD Table I's 0.65 and 0.67 are 95 % and 97.5 % of its full-pool 0.685
NOT_REACHED = "not reached"
DIVERSITY = {"objects_per_image": "objects per image", "classes_per_image": "classes per image"}


def t_band(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean over seeds; NaN bounds with one value."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: the pool rows lack the columns {missing}; they come from run_pool_loop plus dataset/strategy")


def learning_curves(frame: pd.DataFrame, value: str = "miou", confidence: float = 0.95) -> pd.DataFrame:
    """Per (dataset, strategy, iteration): labelled images and share (mean over seeds), mean test
    ``value`` with its ``confidence`` t-band over seeds, and the number of seeds."""
    _require(frame, [*CURVE_KEYS, "seed", "labelled", "labelled_fraction", value], "learning curves")
    rows = []
    for keys, group in frame.groupby(CURVE_KEYS, sort=True):
        mean, low, high = t_band(group[value].to_numpy(dtype=float), confidence)
        rows.append({**dict(zip(CURVE_KEYS, keys)), "labelled": float(group["labelled"].mean()),
                     "labelled_fraction": float(group["labelled_fraction"].mean()), "seeds": group["seed"].nunique(),
                     "mean": mean, "low": low, "high": high})
    return pd.DataFrame(rows, columns=[*CURVE_KEYS, "labelled", "labelled_fraction", "seeds", "mean", "low", "high"])


def full_pool_reference(frame: pd.DataFrame, value: str = "miou") -> dict[str, float]:
    """Mean ``value`` per dataset of the full-pool training runs (one row per seed): the 100 % line."""
    _require(frame, ["dataset", value], "full-pool reference")
    return {str(k): float(v) for k, v in frame.groupby("dataset")[value].mean().items()}


def learning_curve_figure(curves: pd.DataFrame, full_pool: Mapping[str, float] | None = None, x: str = "iteration") -> plt.Figure:
    """AD Fig. 3: mean test mIoU vs ``x`` (``iteration`` or ``labelled_fraction``), one line and
    band per strategy, the full-pool mIoU as a dashed line; one panel per dataset."""
    datasets = sorted(curves["dataset"].unique())
    strategies = sorted(curves["strategy"].unique())
    colours = dict(zip(strategies, sns.color_palette(n_colors=max(len(strategies), 1))))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(6.5 * max(len(datasets), 1), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        data = curves[curves["dataset"] == dataset]
        for strategy in strategies:
            line = data[data["strategy"] == strategy].sort_values(x)
            if line.empty:
                continue
            xs = line[x] * (100 if x == "labelled_fraction" else 1)
            ax.plot(xs, line["mean"], marker="o", ms=3, color=colours[strategy], label=strategy)
            ax.fill_between(xs, line["low"], line["high"], color=colours[strategy], alpha=0.2, lw=0)
        if full_pool and dataset in full_pool:
            ax.axhline(full_pool[dataset], color="black", ls="--", lw=1, label="full pool")
        ax.set(xlabel="labelled share of the pool (%)" if x == "labelled_fraction" else "active-learning iteration",
               ylabel="test mIoU", title=f"{dataset}: test mIoU (mean, 95 % band over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def threshold_table(curves: pd.DataFrame, full_pool: Mapping[str, float], thresholds: Sequence[float] = THRESHOLDS) -> pd.DataFrame:
    """AD Table I, long: per dataset, threshold (a share of the full-pool mIoU) and strategy, the
    first iteration whose mean mIoU reaches threshold × full-pool mIoU and the labelled share of the
    pool then; ``cell`` as the paper prints it, "9 (23%)", or "not reached"."""
    rows = []
    for dataset, data in curves.groupby("dataset", sort=True):
        if dataset not in full_pool:
            raise DataError(f"Table I: no full-pool mIoU for dataset {dataset!r}; run the full-pool training for it")
        for threshold in thresholds:
            target = float(threshold) * float(full_pool[dataset])
            for strategy, line in data.groupby("strategy", sort=True):
                line = line.sort_values("iteration")
                hit = line[line["mean"] >= target]
                row = {"dataset": dataset, "threshold": float(threshold), "target_miou": target, "strategy": strategy,
                       "iteration": pd.NA, "labelled": np.nan, "labelled_fraction": np.nan, "cell": NOT_REACHED}
                if not hit.empty:
                    first = hit.iloc[0]
                    row.update(iteration=int(first["iteration"]), labelled=float(first["labelled"]),
                               labelled_fraction=float(first["labelled_fraction"]),
                               cell=f"{int(first['iteration'])} ({100 * first['labelled_fraction']:.0f}%)")
                rows.append(row)
    out = pd.DataFrame(rows, columns=["dataset", "threshold", "target_miou", "strategy", "iteration", "labelled",
                                      "labelled_fraction", "cell"])
    out["iteration"] = out["iteration"].astype("Int64")
    return out


def threshold_table_wide(table: pd.DataFrame) -> pd.DataFrame:
    """Table I as the paper lays it out: one row per (dataset, threshold), one column per strategy."""
    wide = table.pivot_table(index=["dataset", "threshold", "target_miou"], columns="strategy", values="cell", aggfunc="first")
    wide.columns.name = None
    return wide.reset_index()


def diversity_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, strategy, iteration): objects and classes per image of the selected batch,
    mean over seeds (iterations whose model selected nothing are left out)."""
    _require(frame, [*CURVE_KEYS, *DIVERSITY], "diversity")
    data = frame.dropna(subset=list(DIVERSITY))
    return data.groupby(CURVE_KEYS, as_index=False)[list(DIVERSITY)].mean()


def diversity_figure(curves: pd.DataFrame, iterations: int | None = 6) -> plt.Figure:
    """AD Fig. 4: (a) objects and (b) classes per image of the batch each strategy selected in the
    first ``iterations`` iterations (all when None), one line per strategy (and dataset)."""
    data = curves if iterations is None else curves[curves["iteration"] < iterations]
    style = "dataset" if data["dataset"].nunique() > 1 else None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (column, name), letter in zip(axes, DIVERSITY.items(), "ab"):
        sns.lineplot(data=data, x="iteration", y=column, hue="strategy", style=style, marker="o", errorbar=None,
                     hue_order=sorted(data["strategy"].unique()), ax=ax)
        ax.set(xlabel="active-learning iteration (selected batch)", ylabel=f"mean {name}", title=f"({letter}) {name}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
