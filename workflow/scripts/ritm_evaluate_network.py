"""A project network (AC, DISCA …) on the RITM study's test crops, clicked by RITM's user."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.ritm_steps import evaluate_network_model, network_evaluation


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    method = sm.wildcards.method
    evaluation = network_evaluation(sm.params.evaluation, method, sm.params.disca_lr, sm.input.calibration or None)
    model = segmenter_from_state(load_checkpoint(sm.input.model)).to(pick_device())
    table = evaluate_network_model(root, load_info(root), json.loads(Path(sm.input.split).read_text()), model,
                                   sm.wildcards.network, method, evaluation, sm.params.protocol, sm.params.seed)
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
