"""Train/validation split: seeded 80/20 of the training pool, or the adapter's predefined groups."""
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.data.splits import make_split


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    info = load_info(Path(sm.input.info).parent)
    split = make_split(info.groups or {"train": info.images}, sm.params.mode, sm.params.val_fraction, sm.params.seed)
    write_json(sm.output[0], {**split, "mode": sm.params.mode, "val_fraction": sm.params.val_fraction, "seed": sm.params.seed})


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
