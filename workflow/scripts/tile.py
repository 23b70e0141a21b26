"""Index the evaluation windows of every split image into tiles.csv."""
import json
from pathlib import Path

from dial_core.atomic import write_csv
from dial_core.cli import run_step
from dial_core.data.canonical import raster_shape
from dial_core.data.tiling import fit_tiling, tile_index


def main() -> None:
    root = Path(snakemake.input.info).parent  # noqa: F821
    split = json.loads(Path(snakemake.input.split).read_text())  # noqa: F821
    parts = {k: v for k, v in split.items() if isinstance(v, list)}  # train, val (and test when present)
    shapes = {i: raster_shape(root, i) for ids in parts.values() for i in ids}
    # the window the evaluations use: fitted to validation images smaller than tiling.size
    size, overlap = fit_tiling(snakemake.params.size, snakemake.params.overlap, {i: shapes[i] for i in parts.get("val", [])})  # noqa: F821
    tiles = tile_index(shapes, parts, size, overlap)
    write_csv(snakemake.output[0], tiles)  # noqa: F821


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
