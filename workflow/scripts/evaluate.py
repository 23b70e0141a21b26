"""Run one simulated interactive evaluation (click or patch protocol) into a tidy CSV."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.interactive.alcd import load_alcd_samples
from dial_core.interactive.methods import method
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.confidnet import confidnet_from_state
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.steps import evaluate_clicks, evaluate_clicks_alcd, evaluate_patches, with_disca_lr


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    info = load_info(root)
    val_ids = json.loads(Path(sm.input.split).read_text())["val"]
    images = json.loads(Path(sm.input.images).read_text())["images"]  # the recorded selection (evaluation.max_images)
    if method(sm.wildcards.method).family == "forest":  # ALCD: a random forest, no network
        X, y, _ = load_alcd_samples(sm.input.model)
        table = evaluate_clicks_alcd(root, info, val_ids, X, y, sm.params.alcd, sm.params.evaluation, sm.params.seed,
                                     sm.wildcards.network, images=images, threads=sm.threads)
        write_csv(sm.output[0], table)
        return
    device = pick_device()
    model = segmenter_from_state(load_checkpoint(sm.input.model)).to(device)
    evaluation = with_disca_lr(sm.params.evaluation, sm.input.get("calibration"), sm.wildcards.method)  # disca.lr: calibrated
    common = dict(evaluation=evaluation, tiling=sm.params.tiling,
                  seed=sm.params.seed, network=sm.wildcards.network, images=images)
    if "acquisition" in sm.wildcards.keys():
        confidnet = confidnet_from_state(load_checkpoint(sm.input.confidnet)).to(device) if sm.input.confidnet else None
        table = evaluate_patches(root, info, val_ids, model, confidnet, sm.wildcards.method, sm.wildcards.acquisition, **common)
    else:
        table = evaluate_clicks(root, info, val_ids, model, sm.wildcards.method, **common)
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
