"""Figure and table of the pretraining studies, from the tidy click table and pretrain metrics."""
import json
from pathlib import Path

import pandas as pd

from dial_core.atomic import atomic_path, write_csv, write_text
from dial_core.cli import run_step
from dial_core.report.studies import study_figure, study_markdown, study_table


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    pretrain = json.loads(Path(sm.input.pretrain).read_text())
    table = study_table(sm.params.entries, pretrain, pd.read_csv(sm.input.clicks), sm.params.dataset)
    write_csv(sm.output.table, table)
    write_text(sm.output.markdown, study_markdown(table))
    with atomic_path(sm.output.figure) as tmp:
        study_figure(table).savefig(tmp, dpi=120, format="png")


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
