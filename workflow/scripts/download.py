"""Download one raw file of a dataset: resumable, retried, checksum-verified."""
from pathlib import Path

from dial_core.cli import run_step
from dial_core.data.download import download


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    download(sm.params.url, Path(sm.output[0]), sm.params.checksum, retries=sm.params.retries)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
