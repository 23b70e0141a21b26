"""Figures and tables of the analyses: sequential learning (DIAL Fig. 8), the domain-adaptation
control (DIAL Fig. 6) and the simulated-user study (DISIR Fig. 4), drawn from the tidy tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

WEIGHTS = ("reinitialised", "sequential")


def sequential_frame(sequential: pd.DataFrame, transfer: pd.DataFrame) -> pd.DataFrame:
    """The sequential runs and their re-initialised counterparts (the transfer tables: same network,
    target, method and images) in one frame with ``weights`` and ``position`` (the order the
    sequential run visited the images in; a re-initialised image gets the same position)."""
    keys = ["train_dataset", "dataset", "model", "method"]
    sequential = sequential.assign(weights="sequential")
    positions = sequential.drop_duplicates([*keys, "image"]).set_index([*keys, "image"])["position"]
    reinit = transfer.join(positions, on=[*keys, "image"], how="inner").assign(weights="reinitialised")
    return pd.concat([reinit, sequential], ignore_index=True)


def sequential_summary(frame: pd.DataFrame, clicks: int) -> pd.DataFrame:
    """Per image position: initial mIoU and mIoU after ``clicks`` (our largest step below it) with
    and without kept weights, and the difference sequential − re-initialised (mIoU points)."""
    k = int(min(clicks, frame["step"].max()))
    at = frame[frame["step"].isin([0, k])]
    wide = at.pivot_table(index=["method", "position", "image"], columns=["weights", "step"], values="miou").mul(100)
    out = pd.DataFrame(index=wide.index)
    for weights in WEIGHTS:
        if weights in wide.columns.get_level_values(0):
            out[f"{weights} initial"] = wide[(weights, 0)]
            out[f"{weights} after {k}"] = wide[(weights, k)]
    if all(f"{w} initial" in out for w in WEIGHTS):
        out["initial: sequential − reinitialised"] = out["sequential initial"] - out["reinitialised initial"]
        out[f"after {k}: sequential − reinitialised"] = out[f"sequential after {k}"] - out[f"reinitialised after {k}"]
    return out.reset_index()


def sequential_figure(frame: pd.DataFrame) -> plt.Figure:
    """DIAL Fig. 8: mIoU vs clicks, one curve per image labelled by its position in the sequence;
    (a) weights re-initialised between images, (b) weights kept (sequential learning)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    data = frame.assign(miou=frame["miou"] * 100, order=frame["position"].astype(int) + 1)
    for ax, weights, title in zip(axes, WEIGHTS, ("(a) weights re-initialised between images", "(b) weights updated between images")):
        part = data[data["weights"] == weights]
        if not part.empty:
            sns.lineplot(data=part, x="step", y="miou", hue="order", style="method" if part["method"].nunique() > 1 else None,
                         palette="viridis", marker="o", ax=ax, errorbar=None)
        ax.set(xlabel="annotations", ylabel="IoU (%)", title=title)
        ax.grid(alpha=0.3)
        if ax.get_legend():
            ax.get_legend().set_title("image order")
    fig.tight_layout()
    return fig


def control_frame(transfer: pd.DataFrame, control: pd.DataFrame) -> pd.DataFrame:
    """AC / DISCA from the source network and the control trained on the target (DIAL Fig. 6) on
    the images both ran on: ``curve`` names each series."""
    images = set(transfer["image"]) & set(control["image"])
    transfer = transfer[transfer["image"].isin(images)].assign(curve=lambda f: f["method"] + " (trained on " + f["train_dataset"] + ")")
    control = control[control["image"].isin(images)].assign(curve=lambda f: "control: trained on " + f["dataset"] + " (" + f["method"] + ")")
    return pd.concat([transfer, control], ignore_index=True)


def control_summary(frame: pd.DataFrame, clicks: int) -> pd.DataFrame:
    """Per series of :func:`control_frame`: mean mIoU at 0 and after ``clicks`` (points)."""
    k = int(min(clicks, frame["step"].max()))
    rows = []
    for curve, group in frame.groupby("curve"):
        at = group.groupby("step")["miou"].mean().mul(100)
        rows.append({"curve": curve, "images": group["image"].nunique(), "miou_initial": at.loc[0],
                     f"miou_after_{k}": at.loc[:k].iloc[-1], "gain": at.loc[:k].iloc[-1] - at.loc[0]})
    return pd.DataFrame(rows)


def control_figure(frame: pd.DataFrame) -> plt.Figure:
    """DIAL Fig. 6 (a): mean IoU vs annotations for AC and DISCA from the source network, with the
    fully supervised control as a flat line at its initial mIoU and its own AC curve."""
    fig, ax = plt.subplots(figsize=(6, 4))
    data = frame.assign(miou=frame["miou"] * 100)
    sns.lineplot(data=data, x="step", y="miou", hue="curve", marker="o", errorbar=None, ax=ax)
    supervised = data[data["curve"].str.startswith("control") & (data["step"] == 0)]["miou"].mean()
    ax.axhline(supervised, color="black", ls="--", lw=1, label="fully supervised (control, no click)")
    ax.legend(fontsize=8)
    ax.set(xlabel="annotations", ylabel="IoU (%)", title="Domain adaptation with the supervised control")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def per_class_gains(users: pd.DataFrame, clicks: int) -> pd.DataFrame:
    """Per (user, class): IoU before and after ``clicks`` clicks (our largest step below it) and the
    gain, mean over images, in points; plus each user's corrected pixels per click (DISIR Table 1)."""
    k = int(min(clicks, users["step"].max()))
    classes = [c for c in users.columns if c.startswith("iou_")]
    rows = []
    for user, frame in users.groupby("user"):
        before = frame[frame["step"] == 0].set_index("image")
        after = frame[frame["step"] == k].set_index("image")
        for column in classes:
            rows.append({"user": user, "agent": str(frame["agent"].iloc[0]), "class": column[len("iou_"):],
                         "iou_initial": 100 * before[column].mean(), f"iou_after_{k}": 100 * after[column].mean(),
                         "gain": 100 * (after[column] - before[column]).mean()})
        rows.append({"user": user, "agent": str(frame["agent"].iloc[0]), "class": "mean (mIoU)",
                     "iou_initial": 100 * before["miou"].mean(), f"iou_after_{k}": 100 * after["miou"].mean(),
                     "gain": 100 * (after["miou"] - before["miou"]).mean(),
                     "corrected_pixels_per_click": (after["corrected_pixels"] / k).mean() if k else float("nan")})
    return pd.DataFrame(rows)


def users_figure(users: pd.DataFrame, clicks: int) -> plt.Figure:
    """DISIR Fig. 4: mIoU vs clicks per simulated user (left) and each class's IoU gain after the
    clicks (right), so the rare classes (car, clutter) are visible beside the mean."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    sns.lineplot(data=users.assign(miou=users["miou"] * 100), x="step", y="miou", hue="user", marker="o", errorbar=None, ax=left)
    left.set(xlabel="clicks per image", ylabel="mIoU (%)", title="mIoU vs clicks by simulated user")
    table = per_class_gains(users, clicks)
    sns.barplot(data=table, x="class", y="gain", hue="user", ax=right)
    right.axhline(0, color="grey", lw=0.8)
    right.set(xlabel="", ylabel="IoU gain (points)", title=f"per-class gain after {int(min(clicks, users['step'].max()))} clicks")
    right.tick_params(axis="x", rotation=30)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
