"""Area Disagreement's Fig. 3, Table I and Fig. 4 from the pool-loop rows and the full-pool runs."""
import json

import pandas as pd

from dial_core.atomic import atomic_path, write_csv
from dial_core.cli import run_step
from dial_core.report import pool


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    rows = pd.read_csv(sm.input.rows)
    runs = pd.json_normalize([json.loads(open(p).read()) for p in sm.input.full_runs], sep="_")
    write_csv(sm.output.full, runs)
    full = pool.full_pool_reference(runs)
    curves = pool.learning_curves(rows)
    write_csv(sm.output.curves, curves)
    write_csv(sm.output.thresholds, pool.threshold_table_wide(pool.threshold_table(curves, full, sm.params.thresholds)))
    for figure, path in ((pool.learning_curve_figure(curves, full, "labelled_fraction"), sm.output.figure),
                         (pool.diversity_figure(pool.diversity_curves(rows)), sm.output.diversity)):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=120, format="png")


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
