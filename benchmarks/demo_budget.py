"""Demo budget: run the whole DAG from an empty work folder and time every job.

    ./dial python benchmarks/demo_budget.py [--params params.yaml] [--cores 2]

Prints a table (job, seconds, max RSS) from Snakemake's benchmark files plus the total wall time,
and writes benchmarks/results/demo_budget.json. The budget of the issue: <= 600 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600


REFERENCE_FORWARD_S = 0.27  # DESIGN.md §7: LinkNet-ResNet18, one 512² image, 9 channels, 2 cores


def reference_forward_seconds() -> float:
    """This machine's speed in DESIGN.md's unit: the best of 3 forwards (after a warm-up)."""
    from dial_core.models.segmenter import NetworkSpec, Segmenter

    model = Segmenter(NetworkSpec("linknet", "resnet18", 6, "per_class", "dt", 10.0)).eval()
    x = torch.rand(1, 9, 512, 512)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(3):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return min(times)


def final_gains(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per method, each image's mIoU gain from step 0 to the last step."""
    last = table.groupby(["method", "image"])["step"].transform("max")
    first = table[table["step"] == 0].set_index(["method", "image"])["miou"]
    final = table[table["step"] == last].set_index(["method", "image"])["miou"]
    gain = (final - first).dropna()
    return {m: {i: float(g) for (mm, i), g in gain.items() if mm == m} for m in gain.index.get_level_values(0).unique()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--cores", default="2")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_budget.json"))
    parser.add_argument("--keep", default=None, help="copy the run's reports/ folder here (the work folder is deleted)")
    args = parser.parse_args()
    reference = reference_forward_seconds()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="dial-demo-") as tmp:
        work = Path(tmp)
        shutil.copy(args.params, work / "params.yaml")
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        start = time.perf_counter()
        result = subprocess.run(
            [str(bin_dir / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
             "--cores", args.cores, "--resources", "gpu=1", "-q"],
            env=env, capture_output=True, text=True,
        )
        wall = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"demo failed:\n{result.stderr[-3000:]}")
        rows = []
        for tsv in sorted((work / "benchmarks" / "runs").rglob("*.tsv")):
            bench = pd.read_csv(tsv, sep="\t")
            rows.append({"job": tsv.stem, "seconds": float(bench["s"].iloc[0]), "max_rss_mb": float(bench["max_rss"].iloc[0])})
        summary = pd.read_csv(work / "reports" / "tables" / "clicks.csv")
        patches = pd.read_csv(work / "reports" / "tables" / "patches.csv")
        curves = {
            "clicks_miou": summary.groupby(["method", "step"])["miou"].mean().unstack(0).round(4).to_dict(),
            "patches_miou": patches.groupby(["method", "acquisition", "step"])["miou"].mean().unstack([0, 1]).round(4).to_dict(),
        }
        gains = {"clicks": final_gains(summary)}
        if (work / "reports" / "tables" / "transfer.csv").exists():
            gains["transfer"] = final_gains(pd.read_csv(work / "reports" / "tables" / "transfer.csv"))
        if args.keep:
            shutil.copytree(work / "reports", args.keep, dirs_exist_ok=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format="%.1f"))
    print(f"\ntotal wall time {wall:.1f} s (budget {BUDGET_S} s): {'OK' if wall <= BUDGET_S else 'OVER BUDGET'}")
    print(f"this machine: LinkNet-ResNet18 forward of a 512² 9-channel image {reference:.2f} s "
          f"({reference / REFERENCE_FORWARD_S:.2f}x DESIGN.md's {REFERENCE_FORWARD_S} s)")
    for protocol, by_method in gains.items():
        for method, per_image in by_method.items():
            print(f"{protocol} {method}: mean final mIoU gain {100 * np.mean(list(per_image.values())):+.2f} points "
                  f"({', '.join(f'{100 * g:+.2f}' for g in per_image.values())})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "wall_seconds": wall, "budget_seconds": BUDGET_S, "jobs": rows,
        "reference_forward_seconds": reference, "final_gains": gains,
        "curves": {k: {str(kk): vv for kk, vv in v.items()} for k, v in curves.items()},
    }, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
