"""The full-pool reference of Area Disagreement's Table I: the pool network trained on every pool image."""
import json
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.segmenter import pick_device
from dial_core.steps import train_full_pool


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    split = json.loads(Path(sm.input.split).read_text())
    write_json(sm.output[0], train_full_pool(root, load_info(root), split, int(sm.wildcards.seed), sm.params.active_learning,
                                             sm.params.tiling, pick_device()))


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
