"""Prepare the selected dataset in the canonical format (any adapter)."""
from pathlib import Path

from dial_core.cli import run_step
from dial_core.data.adapters import prepare_dataset
from dial_core.data.canonical import write_dataset


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    info, sources, groups = prepare_dataset(sm.params.adapter, sm.params.options, sm.wildcards.dataset)
    info.groups = groups
    write_dataset(Path(sm.output.info).parent, info, sources)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
