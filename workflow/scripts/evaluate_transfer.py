"""Click protocol of a network (or ALCD's forest) trained on one dataset, on the validation images of
another; with `sequential` (DIAL Fig. 8) the adapted weights are kept from one image to the next."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.interactive.alcd import load_alcd_samples
from dial_core.interactive.methods import method
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.steps import check_transferable, evaluate_clicks, evaluate_clicks_alcd, with_disca_lr


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    info, source = load_info(root), load_info(Path(sm.input.source_info).parent)
    check_transferable(source, info)
    val_ids = json.loads(Path(sm.input.split).read_text())["val"]
    images = json.loads(Path(sm.input.images).read_text())["images"]  # the recorded selection (evaluation.max_images)
    if method(sm.wildcards.method).family == "forest":  # ALCD: the forest fitted on the source's samples
        X, y, _ = load_alcd_samples(sm.input.model)
        table = evaluate_clicks_alcd(root, info, val_ids, X, y, sm.params.alcd, sm.params.evaluation, sm.params.seed,
                                     sm.wildcards.network, train_dataset=sm.wildcards.source, images=images, threads=sm.threads)
    else:
        model = segmenter_from_state(load_checkpoint(sm.input.model)).to(pick_device())
        evaluation = with_disca_lr(sm.params.evaluation, sm.input.get("calibration"), sm.wildcards.method)  # disca.lr: calibrated
        table = evaluate_clicks(root, info, val_ids, model, sm.wildcards.method, evaluation, sm.params.tiling,
                                sm.params.seed, sm.wildcards.network, train_dataset=sm.wildcards.source, images=images,
                                sequential=sm.params.get("sequential", False))
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
