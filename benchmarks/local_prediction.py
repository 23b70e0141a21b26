"""Re-prediction time per click with exact local re-prediction, by image size.

    ./dial python benchmarks/local_prediction.py [--sides 1000 6000] [--clicks 6] [--threads 1]

Issue 8's target: the AC re-prediction time per click on a 6000² image <= 1.5x that on a 1000² image.
Network as the demo builds it (LinkNet-ResNet18, 6 classes, DT clicks of 10 px, untrained: the time
does not depend on the weights), windows of params.yaml's tiling (384 px, 64 px overlap). Both
images are predicted first (the no-click pass, timed too), then clicks alternate between them so a
change in the machine's load hits both sides alike; the first click on each is a warm-up. Clicks sit
at the same offsets inside the window grid (in random grid cells away from the last, flush window),
so both sides re-infer the same windows and the ratio measures what grows with the image. Whole-image
re-prediction per click (what the protocol did before) is timed on the smallest side for reference.
Prints a table and writes benchmarks/results/local_prediction.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from dial_core.allocator import keep_freed_memory
from dial_core.clicks.types import Click
from dial_core.interactive.inference import predict_probs
from dial_core.interactive.local_prediction import ClickPredictor, crop_encoder
from dial_core.models.segmenter import NetworkSpec, Segmenter

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.5
WINDOW, OVERLAP = 384, 64  # params.yaml tiling
N_CLASSES = 6


def image_of(side: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (the content does not change the time)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (side // 64 + 2, side // 64 + 2, 3)).astype(np.float32)
    return np.clip(ndimage.zoom(coarse, (64, 64, 1), order=1)[:side, :side], 0, 255).astype(np.uint8)


def click_plan(sides: list[int], n: int, seed: int = 0) -> dict[int, list[Click]]:
    """``n`` clicks per side at the same offsets in the window grid, in random cells of each image."""
    rng = np.random.default_rng(seed)
    stride = WINDOW - OVERLAP
    offsets = rng.integers(0, stride - 40, (n, 2))  # clear of the flush last window of a 1000² image
    classes = rng.integers(0, N_CLASSES, n)
    plan = {}
    for side in sides:
        cells = max(1, (side - WINDOW) // stride - 1)  # cells 1..cells: a full window on either side
        at = rng.integers(1, cells + 1, (n, 2))
        plan[side] = [Click(int(i * stride + dr), int(j * stride + dc), int(k))
                      for (i, j), (dr, dc), k in zip(at, offsets, classes)]
    return plan


def main() -> None:
    keep_freed_memory()  # as every workflow job (dial_core.cli.run_step)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[1000, 6000])
    parser.add_argument("--clicks", type=int, default=6, help="timed clicks per side (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    parser.add_argument("--full-repeats", type=int, default=2, help="whole-image re-predictions timed on the smallest side")
    args = parser.parse_args()
    if min(args.sides) < 1000:
        parser.error("sides of at least 1000 px: the clicks sit in grid cells with a full window on either side")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Segmenter(NetworkSpec("linknet", "resnet18", N_CLASSES, encoding="dt", radius=10.0)).eval()
    encode = crop_encoder(model.spec.click_encoder())
    sides = sorted(args.sides)
    plan = click_plan(sides, args.clicks + 1)
    predictors, initial = {}, {}
    for side in sides:
        start = time.perf_counter()
        predictors[side] = ClickPredictor(model, image_of(side), WINDOW, OVERLAP)
        initial[side] = time.perf_counter() - start
        print(f"{side}²: no-click pass over {len(predictors[side].windows)} windows in {initial[side]:.1f} s", flush=True)
    times: dict[int, list[float]] = {side: [] for side in sides}
    inferred: dict[int, list[int]] = {side: [] for side in sides}
    for step in range(args.clicks + 1):
        for side in sides:
            start = time.perf_counter()
            windows = predictors[side].update(plan[side][: step + 1], encode)
            if step:  # the first click warms up
                times[side].append(time.perf_counter() - start)
                inferred[side].append(windows)
    small = sides[0]
    full = []
    for step in range(1, args.full_repeats + 1):
        start = time.perf_counter()
        channels = encode(plan[small][: step + 1], (0, 0, small, small))
        predict_probs(model, predictors[small].image, channels, WINDOW, OVERLAP)
        full.append(time.perf_counter() - start)
    rows = []
    for side in sides:
        local = statistics.median(times[side])
        rows.append({"side": side, "megapixels": side * side / 1e6, "windows": len(predictors[side].windows),
                     "initial_s": initial[side], "local_s": local, "local_all_s": times[side],
                     "windows_per_click": statistics.mean(inferred[side]),
                     "full_s": statistics.median(full) if side == small else None,
                     "ratio": local / statistics.median(times[small]), "target": TARGET_RATIO})
    print(f"{'side':>6}{'Mpx':>6}{'windows':>9}{'no-click s':>12}{'full s/click':>14}{'local s/click':>15}"
          f"{'windows/click':>15}{'ratio':>8}  (target <= {TARGET_RATIO})")
    for row in rows:
        flag = "" if row["ratio"] <= TARGET_RATIO else "  over"
        full_s = f"{row['full_s']:.2f}" if row["full_s"] is not None else "-"
        print(f"{row['side']:>6}{row['megapixels']:>6.0f}{row['windows']:>9}{row['initial_s']:>12.1f}{full_s:>14}"
              f"{row['local_s']:>15.3f}{row['windows_per_click']:>15.1f}{row['ratio']:>8.2f}{flag}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "local_prediction.json"
    machine = {"platform": platform.platform(), "torch_threads": args.threads, "device": "cpu"}
    out.write_text(json.dumps({"machine": machine, "window": WINDOW, "overlap": OVERLAP, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
