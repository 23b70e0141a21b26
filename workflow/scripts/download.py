"""Download one raw file of a dataset: resumable, retried, checksum-verified."""
from pathlib import Path

from dial_core.cli import run_step
from dial_core.data.download import download, read_checksum_file


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    dest = Path(sm.output[0])
    checksum = sm.params.checksum
    if checksum is None and sm.params.checksum_file:
        checksum = read_checksum_file(Path(sm.params.checksum_file), dest.name)
    download(sm.params.url, dest, checksum, retries=sm.params.retries)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
