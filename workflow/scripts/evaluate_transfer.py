"""Click protocol of a network trained on one dataset, on the validation images of another."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.steps import check_transferable, evaluate_clicks, with_disca_lr


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    info, source = load_info(root), load_info(Path(sm.input.source_info).parent)
    check_transferable(source, info)
    model = segmenter_from_state(load_checkpoint(sm.input.model)).to(pick_device())
    val_ids = json.loads(Path(sm.input.split).read_text())["val"]
    images = json.loads(Path(sm.input.images).read_text())["images"]  # the recorded selection (evaluation.max_images)
    evaluation = with_disca_lr(sm.params.evaluation, sm.input.get("calibration"), sm.wildcards.method)  # disca.lr: calibrated
    table = evaluate_clicks(root, info, val_ids, model, sm.wildcards.method, evaluation, sm.params.tiling,
                            sm.params.seed, sm.wildcards.network, train_dataset=sm.wildcards.source, images=images)
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
