"""DIAL Fig. 9's heat map and App. B's figure with their tables, from the crop tables."""
import pandas as pd

from dial_core.atomic import atomic_path, write_csv
from dial_core.cli import run_step
from dial_core.report.crops import appendix_b_figure, appendix_b_table, fig9_heatmap, mistake_bins


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    crops = pd.read_csv(sm.input.crops)
    largest = crops[crops["agent"] == "largest_mistake_centre"]  # DIAL Fig. 9 clicks with its main user
    bins = mistake_bins(largest if not largest.empty else crops, sm.params.size_edges, sm.params.accuracy_edges)
    write_csv(sm.output.bins, bins)
    write_csv(sm.output.appendix_table, appendix_b_table(crops))
    for path, figure in ((sm.output.heatmap, fig9_heatmap(bins)), (sm.output.appendix_figure, appendix_b_figure(crops))):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=120, format="png")


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
