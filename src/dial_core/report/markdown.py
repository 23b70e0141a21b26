"""The markdown summary of a run (reports/summary.md)."""

from __future__ import annotations

import pandas as pd


def _table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".3f")


def summary_markdown(pretrain: dict, clicks: pd.DataFrame, patches: pd.DataFrame) -> str:
    networks = pd.DataFrame(
        [{"network": m["network"], "dataset": m["dataset"], "val mIoU (no clicks)": m["val_miou"],
          "val accuracy": m["val_accuracy"], "train seconds": m["seconds"]} for m in pretrain.values()]
    )
    drop = ["agent", "encoding"]
    return "\n\n".join([
        "# DIAL reproduction: run summary",
        "## Pretrained networks\n\n" + _table(networks),
        "## Click protocol (mean over validation images)\n\n" + _table(clicks.drop(columns=drop + ["acquisition"])),
        "## Patch protocol (mean over validation images)\n\n" + _table(patches.drop(columns=drop)),
    ]) + "\n"
