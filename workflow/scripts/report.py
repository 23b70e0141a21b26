"""Figures, a markdown summary and the evaluation metrics, all from the tidy tables."""
import json
from pathlib import Path

import pandas as pd

from dial_core.atomic import atomic_path, write_json, write_text
from dial_core.cli import run_step
from dial_core.report.figures import miou_vs_clicks, miou_vs_patches
from dial_core.report.markdown import summary_markdown
from dial_core.report.summaries import click_summary, patch_summary


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    clicks, patches = pd.read_csv(sm.input.clicks), pd.read_csv(sm.input.patches)
    clicks = clicks[clicks["model"].isin(sm.params.main_networks)]  # study networks: report_studies
    for figure, path in ((miou_vs_clicks(clicks), sm.output.clicks_figure), (miou_vs_patches(patches), sm.output.patches_figure)):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=120, format="png")
    click_table = click_summary(clicks, sm.params.noc_thresholds, sm.params.noc_budget)
    patch_table = patch_summary(patches)
    pretrain = json.loads(Path(sm.input.pretrain).read_text())
    write_text(sm.output.summary, summary_markdown(pretrain, click_table, patch_table))
    write_json(sm.output.metrics, {
        "clicks": click_table.to_dict(orient="records"),
        "patches": patch_table.to_dict(orient="records"),
    })


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
