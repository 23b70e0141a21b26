"""Simulated users' cost per click, as a ratio to one scipy distance transform of the same map.

    ./dial python benchmarks/agent_cost.py [--sides 4000 6000] [--repeats 3]

Issue 8's target: the agent's per-click cost on a 36 Mpx map (6000²) <= 1.5x one
``scipy.ndimage.distance_transform_edt`` of that map. Both are timed in this run on the same
synthetic label / prediction pair (blocky classes, a few thousand mistakes of realistic sizes), so
the ratio does not depend on the machine. Prints a table and writes benchmarks/results/agent_cost.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from dial_core.clicks.agents import AGENTS, AgentContext, next_click

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.5


def scene(side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 6-class label of 32-px blocks and a prediction with mistakes of 8..200 px blobs."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 6, (side // 32 + 1, side // 32 + 1), dtype=np.uint8)
    label = np.kron(coarse, np.ones((32, 32), np.uint8))[:side, :side]
    prediction = label.copy()
    noise = ndimage.zoom(rng.random((side // 16 + 1, side // 16 + 1)), 16, order=1)[:side, :side]
    wrong = noise > 0.9  # about 3-8 % of the pixels, in connected blobs
    prediction[wrong] = (label[wrong] + 1) % 6
    return label, prediction


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[4000, 6000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--agents", nargs="+", default=["largest_mistake_centre", "disir", "random_in_mistake"])
    args = parser.parse_args()
    unknown = sorted(set(args.agents) - set(AGENTS))
    if unknown:
        parser.error(f"unknown agent(s) {', '.join(unknown)}; choose from {', '.join(sorted(AGENTS))}")
    rows = []
    for side in args.sides:
        label, prediction = scene(side)
        edt = best_of(args.repeats, lambda: ndimage.distance_transform_edt(label != prediction))
        for agent in args.agents:
            def click() -> None:
                next_click(agent, AgentContext(label, prediction, rng=np.random.default_rng(0), n_classes=6))
            seconds = best_of(args.repeats, click)
            rows.append({"agent": agent, "megapixels": side * side / 1e6, "edt_s": edt, "agent_s": seconds,
                         "ratio": seconds / edt, "target": TARGET_RATIO})
    print(f"{'agent':<26}{'Mpx':>6}{'EDT s':>9}{'agent s':>10}{'ratio':>8}  (target <= {TARGET_RATIO})")
    for row in rows:
        flag = "" if row["ratio"] <= TARGET_RATIO else "  over"
        print(f"{row['agent']:<26}{row['megapixels']:>6.0f}{row['edt_s']:>9.2f}{row['agent_s']:>10.2f}{row['ratio']:>8.2f}{flag}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "agent_cost.json"
    out.write_text(json.dumps({"machine": {"platform": platform.platform()}, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
