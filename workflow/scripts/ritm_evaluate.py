"""One RITM experiment on the test crops, clicked by RITM's user: one tidy row per crop and click."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import pick_device
from dial_core.ritm_steps import evaluate_ritm_model, ritm_from_payload


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    device = pick_device()
    model, interactive = ritm_from_payload(load_checkpoint(sm.input.model), sm.input.model)
    table = evaluate_ritm_model(root, load_info(root), json.loads(Path(sm.input.split).read_text()), model.to(device),
                                interactive, sm.wildcards.experiment, sm.params.protocol, device)
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
