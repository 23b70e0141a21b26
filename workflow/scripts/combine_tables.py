"""Concatenate per-job tidy tables into one (the file DVC plots and the report read)."""
import pandas as pd

from dial_core.atomic import write_csv
from dial_core.cli import run_step


def main() -> None:
    write_csv(snakemake.output[0], pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True))  # noqa: F821


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
