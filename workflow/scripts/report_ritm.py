"""The satellite report's Table 1 (ours beside its numbers), Fig. 7 and Fig. 8 from the RITM study's table."""
import json
from pathlib import Path

import pandas as pd

from dial_core.atomic import atomic_path, write_csv, write_text
from dial_core.cli import run_step
from dial_core.report.noc_study import click_increments, fig_7, fig_8, iou_curves, paper_beside, scale_line, table_1, table_1_markdown
from dial_core.report.reproduction import load_paper_numbers


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    rows = pd.read_csv(sm.input.rows)
    table = paper_beside(table_1(rows, sm.params.thresholds), load_paper_numbers(sm.input.paper))
    trained = [json.loads(Path(f).read_text()) for f in sm.input.metrics]
    write_csv(sm.output.table, table)
    write_text(sm.output.markdown, table_1_markdown(table, sm.params.thresholds, scale_line(rows, trained, sm.params.network, sm.params.training)))
    curves = iou_curves(rows)
    increments = click_increments(curves)
    write_csv(sm.output.curves, curves)
    write_csv(sm.output.increments, increments)
    for figure, path in ((fig_7(curves), sm.output.fig7), (fig_8(increments), sm.output.fig8)):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=120, format="png")


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
