"""The patch protocol's curves (DIAL Figs. 3-4) from a combined patch table."""
import pandas as pd

from dial_core.atomic import atomic_path
from dial_core.cli import run_step
from dial_core.report.figures import miou_vs_patches


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    figure = miou_vs_patches(pd.read_csv(sm.input.patches))
    with atomic_path(sm.output.figure) as tmp:
        figure.savefig(tmp, dpi=120, format="png")


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
