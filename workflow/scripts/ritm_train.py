"""RITM's iterative training on one dataset: from scratch, without clicks, or finetuned from the source model."""
import json
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint, save_checkpoint
from dial_core.models.segmenter import pick_device
from dial_core.ritm_steps import ritm_from_payload, ritm_payload, train_ritm_model


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    experiment = sm.wildcards.get("experiment", "finetuning")
    init = ritm_from_payload(load_checkpoint(sm.input.init), sm.input.init)[0] if "init" in sm.input.keys() else None
    device = pick_device()
    model, metrics = train_ritm_model(root, load_info(root), json.loads(Path(sm.input.split).read_text()), sm.params.network,
                                      sm.params.training, sm.params.seed, device, experiment != "not_interactive", init,
                                      workers=sm.threads if device.type == "cuda" else 0)
    save_checkpoint(sm.output.model, ritm_payload(model, sm.params.network, experiment, sm.wildcards.dataset,
                                                  experiment != "not_interactive"))
    write_json(sm.output.metrics, {**metrics, "experiment": experiment, "init": sm.input.get("init")})


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
