"""Generate the embedded synthetic dataset in the canonical format."""
from pathlib import Path

from dial_core.cli import run_step
from dial_core.data.canonical import write_dataset
from dial_core.data.synthetic_adapter import synthetic_dataset


def main() -> None:
    p = snakemake.params.synthetic  # noqa: F821 (injected by Snakemake)
    info, samples = synthetic_dataset(
        snakemake.wildcards.dataset, p["n_images"], p["size"], p["domain"], p["label_view"], snakemake.params.seed  # noqa: F821
    )
    write_dataset(Path(snakemake.output.info).parent, info, samples)  # noqa: F821


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
