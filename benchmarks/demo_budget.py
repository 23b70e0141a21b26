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

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--cores", default="2")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "demo_budget.json"))
    args = parser.parse_args()
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
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format="%.1f"))
    print(f"\ntotal wall time {wall:.1f} s (budget {BUDGET_S} s): {'OK' if wall <= BUDGET_S else 'OVER BUDGET'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "wall_seconds": wall, "budget_seconds": BUDGET_S, "jobs": rows,
        "curves": {k: {str(kk): vv for kk, vv in v.items()} for k, v in curves.items()},
    }, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
