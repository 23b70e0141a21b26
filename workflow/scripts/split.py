"""Seeded 80/20 train/validation split of the prepared images."""
from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.data.splits import split_train_val
from pathlib import Path


def main() -> None:
    info = load_info(Path(snakemake.input.info).parent)  # noqa: F821
    split = split_train_val(info.images, snakemake.params.val_fraction, snakemake.params.seed)  # noqa: F821
    write_json(snakemake.output[0], {**split, "val_fraction": snakemake.params.val_fraction, "seed": snakemake.params.seed})  # noqa: F821


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
