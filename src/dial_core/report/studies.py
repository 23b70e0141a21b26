"""The pretraining studies (DISIR figs. 5–8, DIAL table V): each network's validation mIoU without
clicks and its mIoU after a fixed number of AC clicks, from the tidy tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

# Backbones of DISIR's study that segmentation-models-pytorch does not offer.
NO_SMP_EQUIVALENT = ("SegNet", "LEDNet", "ERFNet", "D3Net")


def study_table(entries: list[dict], pretrain: dict, clicks: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per (study, value): network, val mIoU (no clicks), mIoU at 0 and K AC clicks, gain."""
    ac = clicks[(clicks["method"] == "ac") & (clicks["dataset"] == dataset)]
    curves = ac.groupby(["model", "step"])["miou"].mean().unstack("step")
    last = int(ac["step"].max())
    rows = []
    for entry in entries:
        net = entry["network"]
        metrics = pretrain.get(f"{dataset}/{net}", {})
        initial, final = curves.loc[net, 0], curves.loc[net, last]
        rows.append({
            "study": entry["study"], "value": entry["value"], "network": net,
            "val_miou": metrics.get("val_miou"), "miou_0_clicks": initial,
            f"miou_{last}_clicks": final, "ac_gain": final - initial,
        })
    return pd.DataFrame(rows)


def study_figure(table: pd.DataFrame) -> plt.Figure:
    """One panel per study: mIoU without clicks and after K AC clicks, per value."""
    after = [c for c in table.columns if c.startswith("miou_") and c != "miou_0_clicks"][0]
    long = table.melt(id_vars=["study", "value"], value_vars=["miou_0_clicks", after], var_name="when", value_name="mIoU")
    long["when"] = long["when"].map({"miou_0_clicks": "no clicks", after: after.replace("miou_", "").replace("_", " ")})
    studies = list(dict.fromkeys(table["study"]))
    fig, axes = plt.subplots(1, len(studies), figsize=(3.2 * len(studies), 3.6), squeeze=False, sharey=True)
    for ax, study in zip(axes[0], studies):
        sns.barplot(data=long[long["study"] == study], x="value", y="mIoU", hue="when", ax=ax, legend=ax is axes[0][0])
        ax.set(title=study, xlabel="")
        ax.tick_params(axis="x", rotation=45)
    low = max(0.0, long["mIoU"].min() - 0.05)
    axes[0][0].set_ylim(low, min(1.0, long["mIoU"].max() + 0.02))
    fig.tight_layout()
    return fig


def study_markdown(table: pd.DataFrame) -> str:
    """The studies as markdown, with the backbones of DISIR's study that have no smp equivalent."""
    parts = ["# Pretraining studies", ""]
    for study, group in table.groupby("study", sort=False):
        parts += [f"## {study}", "", group.drop(columns=["study"]).to_markdown(index=False, floatfmt=".3f"), ""]
    parts.append(
        "DISIR backbones without a segmentation-models-pytorch equivalent (not trained): "
        + ", ".join(NO_SMP_EQUIVALENT) + "."
    )
    return "\n".join(parts) + "\n"
