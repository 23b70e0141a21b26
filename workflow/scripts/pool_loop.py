"""Area Disagreement's pool-based loop for one strategy and seed; resumes a killed run's iterations."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.models.segmenter import pick_device
from dial_core.steps import pool_progress, run_pool_strategy, save_pool_progress


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    root = Path(sm.input.info).parent
    split = json.loads(Path(sm.input.split).read_text())
    strategy, seed = sm.wildcards.strategy, int(sm.wildcards.seed)
    progress = Path(sm.params.progress)
    fingerprint = {"active_learning": sm.params.active_learning, "tiling": sm.params.tiling, "strategy": strategy, "seed": seed}
    rows = pool_progress(progress, fingerprint)

    def on_iteration(row: dict) -> None:
        rows.append(row)
        save_pool_progress(progress, fingerprint, rows)

    table = run_pool_strategy(root, load_info(root), split, strategy, seed, sm.params.active_learning, sm.params.tiling,
                              pick_device(), previous=list(rows), on_iteration=on_iteration)
    write_csv(sm.output[0], table)


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
