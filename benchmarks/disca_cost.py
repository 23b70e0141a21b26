"""DISCA's cost per click as a ratio to AC's, on the same image, through the click protocol.

    ./dial python benchmarks/disca_cost.py [--side 512] [--clicks 10] [--steps 3] [--window 128]

Issue 8's target: DISCA per click <= 8x AC on the same image (DIAL Table II, GPU: 0.11 s vs 0.01 s,
11x). Both methods run :func:`dial_core.evaluation.protocols.click_protocol` on one synthetic
domain-A image with an untrained, seeded demo network (LinkNet-ResNet18, DT clicks, the demo's
inference window) and the same simulated user; the time of each click step (user, adaptation,
re-prediction, scores) is averaged over the clicks. AC re-predicts only the windows whose
annotation channels changed; DISCA adapts on every grid window holding a click (``--steps`` SGD
steps each), then re-predicts the whole image. Prints a table, writes
benchmarks/results/disca_cost.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from dial_core.data.synthetic import generate_scene
from dial_core.evaluation.protocols import InteractionConfig, click_protocol
from dial_core.interactive.disca import DiscaConfig
from dial_core.models.segmenter import NetworkSpec, Segmenter

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 8.0
CLASSES = ["impervious", "building", "low_vegetation", "tree", "car", "clutter"]


def per_click_seconds(model: Segmenter, image: np.ndarray, label: np.ndarray, cfg: InteractionConfig, clicks: int) -> float:
    rows = click_protocol(model, image, label, CLASSES, clicks, cfg, np.random.default_rng(0))
    return float(np.mean([r["seconds"] for r in rows[1:]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3, help="DISCA SGD steps per window (params.yaml: 3, paper: 10)")
    parser.add_argument("--window", type=int, default=128, help="DISCA grid window (params.yaml: 128, paper: 512)")
    parser.add_argument("--inference-window", type=int, default=384)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Segmenter(NetworkSpec("linknet", "resnet18", len(CLASSES), "per_class", "dt", 10.0)).eval()
    image, label = generate_scene(args.side, "A", np.random.default_rng(0))
    disca = DiscaConfig(lr=2e-6, steps=args.steps, regularisation=1.0, ac_drop_probability=1.0)
    common = dict(agent="largest_mistake_centre", disca=disca, window=args.inference_window, overlap=64, disca_window=args.window)
    ac = per_click_seconds(model, image, label, InteractionConfig("ac", **common), args.clicks)
    adapted = per_click_seconds(model, image, label, InteractionConfig("disca", **common), args.clicks)
    row = {"side": args.side, "clicks": args.clicks, "steps": args.steps, "disca_window": args.window,
           "ac_s_per_click": ac, "disca_s_per_click": adapted, "ratio": adapted / ac, "target": TARGET_RATIO}
    print(f"{'side':>6}{'steps':>7}{'window':>8}{'AC s/click':>12}{'DISCA s/click':>15}{'ratio':>8}  (target <= {TARGET_RATIO})")
    flag = "" if row["ratio"] <= TARGET_RATIO else "  over"
    print(f"{args.side:>6}{args.steps:>7}{args.window:>8}{ac:>12.3f}{adapted:>15.3f}{row['ratio']:>8.2f}{flag}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "disca_cost.json"
    out.write_text(json.dumps({"machine": {"platform": platform.platform(), "threads": torch.get_num_threads()}, "rows": [row]}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
