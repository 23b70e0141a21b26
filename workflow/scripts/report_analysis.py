"""One analysis figure and its summary table (params.kind: sequential | control | users)."""
import pandas as pd

from dial_core.atomic import atomic_path, write_csv
from dial_core.cli import run_step
from dial_core.report import analyses


def sequential(sm) -> tuple:
    frame = analyses.sequential_frame(pd.read_csv(sm.input.sequential), pd.read_csv(sm.input.transfer))
    return analyses.sequential_figure(frame), analyses.sequential_summary(frame, sm.params.clicks)


def control(sm) -> tuple:
    frame = analyses.control_frame(pd.read_csv(sm.input.transfer), pd.read_csv(sm.input.control))
    return analyses.control_figure(frame), analyses.control_summary(frame, sm.params.clicks)


def users(sm) -> tuple:
    frame = pd.read_csv(sm.input.users)
    return analyses.users_figure(frame, sm.params.clicks), analyses.per_class_gains(frame, sm.params.clicks)


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    figure, table = {"sequential": sequential, "control": control, "users": users}[sm.params.kind](sm)
    write_csv(sm.output.table, table)
    with atomic_path(sm.output.figure) as tmp:
        figure.savefig(tmp, dpi=120, format="png")


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
