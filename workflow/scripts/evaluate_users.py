"""AC clicks under one named simulated user (DISIR Fig. 4: class-dependent vs class-independent)."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.steps import evaluate_clicks


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    model = segmenter_from_state(load_checkpoint(sm.input.model)).to(pick_device())
    val_ids = json.loads(Path(sm.input.split).read_text())["val"]
    images = json.loads(Path(sm.input.images).read_text())["images"]
    table = evaluate_clicks(root, load_info(root), val_ids, model, "ac", sm.params.evaluation, sm.params.tiling,
                            sm.params.seed, sm.wildcards.network, images=images, n_clicks=sm.params.clicks)
    table.insert(0, "user", sm.wildcards.user)
    table.insert(1, "class_dependent", bool(sm.params.evaluation["agent_options"].get("class_dependent", False)))
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
