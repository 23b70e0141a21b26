"""Pick DISCA's learning rate for one network and the dataset it is clicked on, from a grid, on that
dataset's calibration images (training images held out of training; never validation)."""
import json
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.steps import calibrate_disca, check_transferable


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    info = load_info(root)
    check_transferable(load_info(Path(sm.input.source_info).parent), info)
    split = json.loads(Path(sm.input.split).read_text())
    model = segmenter_from_state(load_checkpoint(sm.input.model)).to(pick_device())
    result = calibrate_disca(root, info, split, model, sm.params.evaluation, sm.params.tiling,
                             sm.params.seed, sm.wildcards.network, trained_on=sm.wildcards.source,
                             method=sm.wildcards.method)
    write_json(sm.output[0], result)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
