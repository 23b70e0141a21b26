"""Seaborn figures of the papers, from the tidy tables.

Each figure has two panels: the mean mIoU curve as the papers draw it, and the per-image gain over
the initial prediction with its standard error. Differences between images dwarf the effect of a
few clicks, so error bands on absolute mIoU would hide what the clicks change.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from dial_core.report.summaries import GROUP  # noqa: E402

KEYS = [*GROUP, "image", "seed"]  # one curve: an experiment on one image


def with_gain(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds ``miou_gain``: mIoU minus the same image's mIoU at step 0 of the same experiment."""
    initial = frame[frame["step"] == 0].set_index(KEYS)["miou"].rename("miou_initial")
    out = frame.join(initial, on=KEYS)
    out["miou_gain"] = out["miou"] - out["miou_initial"]
    return out


def _curves(frame: pd.DataFrame, hue: str, style: str | None, xlabel: str, title: str) -> plt.Figure:
    data = with_gain(frame)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    sns.lineplot(data=data, x="step", y="miou", hue=hue, style=style, errorbar=None, marker="o", ax=left)
    left.set(xlabel=xlabel, ylabel="mIoU (mean over images)", title=title)
    sns.lineplot(data=data, x="step", y="miou_gain", hue=hue, style=style, errorbar="se", ax=right, legend=False)
    right.axhline(0, color="grey", lw=0.8)
    right.set(xlabel=xlabel, ylabel="mIoU gain over the initial prediction", title="gain per image (mean ± s.e.)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def miou_vs_clicks(frame: pd.DataFrame) -> plt.Figure:
    """DISIR / DISCA curve: mIoU against clicks per image, one line per method (and network)."""
    style = "model" if frame["model"].nunique() > 1 else None
    return _curves(frame, "method", style, "clicks per image", "mIoU vs clicks")


def miou_vs_patches(frame: pd.DataFrame) -> plt.Figure:
    """DIAL Fig. 3 / 4: mIoU against annotated patches, one line per acquisition function."""
    style = "method" if frame["method"].nunique() > 1 else None
    return _curves(frame, "acquisition", style, "annotated patches (one click each)", "mIoU vs annotated patches")


def miou_vs_clicks_by_domain(frame: pd.DataFrame) -> plt.Figure:
    """DISCA's domain adaptation figure: mIoU vs clicks per method, on the training domain and on others."""
    data = frame.copy()
    data["curve"] = data["method"] + ", " + data["domain"]
    return _curves(data, "curve", None, "clicks per image", "mIoU vs clicks across domains")
