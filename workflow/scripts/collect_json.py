"""Gather per-job metrics JSON files (<kind>/<dataset>/<network>.json) into one DVC metrics file."""
import json
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step


def main() -> None:
    merged = {f"{Path(p).parent.name}/{Path(p).stem}": json.loads(Path(p).read_text()) for p in snakemake.input}  # noqa: F821
    write_json(snakemake.output[0], merged)  # noqa: F821


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
