"""Prepare the selected dataset in the canonical format (any adapter), cut into spatial blocks when
the split is spatial (split.mode: blocks)."""
from pathlib import Path

from dial_core.cli import run_step
from dial_core.data.adapters import prepare_dataset
from dial_core.data.blocks import cut_into_blocks
from dial_core.data.canonical import write_dataset


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    info, sources, groups = prepare_dataset(sm.params.adapter, sm.params.options, sm.wildcards.dataset)
    if sm.params.blocks:
        sources, groups, info.blocks = cut_into_blocks(sources, groups, sm.params.blocks["size"], sm.params.blocks["buffer"])
    info.groups = groups  # block groups fill in while the blocks stream, before dataset.json is written
    write_dataset(Path(sm.output.info).parent, info, sources)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
