"""Pretrain one AC network (DISIR recipe), resumable; write the model and its validation metrics."""
import json
import time
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.checkpoint import save_checkpoint
from dial_core.models.segmenter import pick_device, segmenter_state
from dial_core.steps import pretrain_network


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    split = json.loads(Path(sm.input.split).read_text())
    start = time.perf_counter()
    info = load_info(root)
    model, metrics = pretrain_network(
        root, info, split, sm.params.network, sm.params.train, sm.params.tiling,
        sm.params.seed, pick_device(), sm.threads, Path(sm.params.state),
    )
    save_checkpoint(sm.output.model, segmenter_state(model, info.classes))  # classes: for `dial predict`
    metrics.update(dataset=sm.wildcards.dataset, network=sm.wildcards.network, seconds=time.perf_counter() - start)
    write_json(sm.output.metrics, metrics)
    Path(sm.params.state).unlink(missing_ok=True)  # the final model supersedes the resume state


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
