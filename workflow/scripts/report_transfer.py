"""Domain adaptation figure and table: the same networks clicked on their own domain and on others."""
import pandas as pd

from dial_core.atomic import atomic_path, write_csv
from dial_core.cli import run_step
from dial_core.report.figures import miou_vs_clicks_by_domain
from dial_core.report.summaries import click_summary


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    transfer = pd.read_csv(sm.input.transfer)
    own = pd.read_csv(sm.input.clicks)
    own = own[own["model"].isin(sm.params.networks)].assign(train_dataset=lambda f: f["dataset"])
    frame = pd.concat([own, transfer], ignore_index=True)
    frame["domain"] = frame["train_dataset"] + " → " + frame["dataset"]
    summary = pd.concat(
        [click_summary(group, sm.params.noc_thresholds, sm.params.noc_budget).assign(domain=domain) for domain, group in frame.groupby("domain")],
        ignore_index=True,
    )
    write_csv(sm.output.table, summary)
    with atomic_path(sm.output.figure) as tmp:
        miou_vs_clicks_by_domain(frame).savefig(tmp, dpi=120, format="png")


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
