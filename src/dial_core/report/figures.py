"""Seaborn figures of the papers, from the tidy tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def miou_vs_clicks(frame: pd.DataFrame) -> plt.Figure:
    """DISIR / DISCA curve: mIoU against clicks per image, one line per method (and network)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    style = "model" if frame["model"].nunique() > 1 else None
    sns.lineplot(data=frame, x="step", y="miou", hue="method", style=style, errorbar="se", marker="o", ax=ax)
    ax.set(xlabel="clicks per image", ylabel="mIoU", title="mIoU vs clicks (validation images, mean ± s.e.)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def miou_vs_patches(frame: pd.DataFrame) -> plt.Figure:
    """DIAL Fig. 3 / 4: mIoU against annotated patches, one line per acquisition function."""
    fig, ax = plt.subplots(figsize=(6, 4))
    style = "method" if frame["method"].nunique() > 1 else None
    sns.lineplot(data=frame, x="step", y="miou", hue="acquisition", style=style, errorbar="se", ax=ax)
    ax.set(xlabel="annotated patches (one click each)", ylabel="mIoU", title="mIoU vs annotated patches")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
