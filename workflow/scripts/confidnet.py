"""Train ConfidNet on a frozen pretrained network."""
import json
import time
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import load_checkpoint, save_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_from_state
from dial_core.steps import train_confidnet_step


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    split = json.loads(Path(sm.input.split).read_text())
    start = time.perf_counter()
    segmenter = segmenter_from_state(load_checkpoint(sm.input.segmenter))
    head, metrics = train_confidnet_step(
        root, load_info(root), split, segmenter, sm.params.confidnet, sm.params.train,
        sm.params.seed, pick_device(), sm.threads,
    )
    save_checkpoint(sm.output.model, {"in_channels": head.in_channels, "state_dict": head.state_dict()})
    metrics.update(dataset=sm.wildcards.dataset, network=sm.wildcards.network, seconds=time.perf_counter() - start)
    write_json(sm.output.metrics, metrics)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
