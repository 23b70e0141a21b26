"""reports/reproduction.md: the papers' published numbers beside our tidy tables, with our run's scale."""
import json
from pathlib import Path

import pandas as pd

from dial_core.atomic import write_text
from dial_core.cli import run_step
from dial_core.report.reproduction import TABLES, load_paper_numbers, reproduction_markdown


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    inputs = dict(sm.input.items())
    # clicks and patches always; transfer / studies only when the run made them (the rule's inputs say)
    tables = {name: pd.read_csv(inputs[name]) for name in TABLES if name in inputs}
    scale = {**sm.params.scale, "network": sm.params.network}
    pretrain = json.loads(Path(inputs["pretrain"]).read_text())
    trained = pretrain.get(f"{scale.get('dataset')}/{sm.params.network}", {})
    scale.setdefault("train_images", trained.get("train_images"))
    paper = load_paper_numbers(inputs["paper"])
    calibrations = [json.loads(Path(f).read_text()) for f in sm.input.calibrations]  # disca.lr: calibrated
    write_text(sm.output.markdown, reproduction_markdown(tables, scale, paper, sm.params.network, calibrations))


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
