"""The report's "No training": the source model, or the user's checkpoint checked against ritm.network, as is."""
from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.models.checkpoint import load_checkpoint, save_checkpoint
from dial_core.ritm_steps import ritm_from_payload, ritm_payload, user_checkpoint


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    path = sm.input.model
    if sm.params.checkpoint:  # a user's file: any state dict of ritm.network, or a clear error naming what differs
        model, origin = user_checkpoint(path, sm.params.network), f"checkpoint {path}"
    else:
        model, origin = ritm_from_payload(load_checkpoint(path), path)[0], f"trained from scratch on {sm.params.source}"
    save_checkpoint(sm.output.model, ritm_payload(model, sm.params.network, "no_training", origin, True))
    write_json(sm.output.metrics, {"experiment": "no_training", "model": path, "origin": origin})


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
