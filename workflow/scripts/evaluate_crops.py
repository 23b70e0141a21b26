"""One annotation per sampled crop by one simulated user, AC vs DISCA (DIAL Fig. 9, App. B)."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.steps import evaluate_crops, with_disca_lr


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    model = segmenter_from_state(load_checkpoint(sm.input.model)).to(pick_device())
    val_ids = json.loads(Path(sm.input.split).read_text())["val"]
    images = json.loads(Path(sm.input.images).read_text())["images"]
    evaluation = sm.params.evaluation
    for calibration in sm.input.calibrations:  # each adapting method's calibrated lr
        evaluation = with_disca_lr(evaluation, calibration, json.loads(Path(calibration).read_text())["method"])
    table = evaluate_crops(root, load_info(root), val_ids, model, sm.params.crops["methods"], sm.wildcards.agent,
                           sm.params.crops, evaluation, sm.params.tiling, sm.params.seed, sm.wildcards.network, images=images)
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
