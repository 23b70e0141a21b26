"""ALCD's pre-training samples (and the forest's validation score) for one dataset."""
import json
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.interactive.alcd import save_alcd_samples
from dial_core.steps import pretrain_alcd


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    split = json.loads(Path(sm.input.split).read_text())
    X, y, metrics = pretrain_alcd(root, load_info(root), split, sm.params.alcd, sm.params.seed, sm.threads)
    save_alcd_samples(sm.output.samples, X, y, metrics)
    write_json(sm.output.metrics, metrics)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
