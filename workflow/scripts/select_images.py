"""Record the validation images the evaluations of one dataset run on (evaluation.max_images)."""
import json
import logging
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.evaluation.selection import select_images


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    val_ids = json.loads(Path(sm.input.split).read_text())["val"]
    selection = select_images(val_ids, sm.params.max_images, sm.params.seed)
    logging.getLogger("dial").info("%s: evaluating %d of %d validation images (max_images %s, seed %d)",
                                   sm.wildcards.dataset, len(selection["images"]), len(val_ids), sm.params.max_images, sm.params.seed)
    write_json(sm.output[0], {"dataset": sm.wildcards.dataset, **selection})


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
