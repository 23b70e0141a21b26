"""Training and data-loader throughput per network (crops per second), CPU and GPU when present.

    ./dial python benchmarks/training_throughput.py [--configfile config/studies.yaml] [--steps 6]

For every network of the params (main networks, plus the study grid when enabled) it times
(a) the data loader alone: crops read in windows from GeoTIFFs, flipped, clicked and encoded, and (b) full training
steps (forward, backward, SGD) on synthetic scenes. The loader must outpace training, or the
accelerator waits for data. Prints a table and writes benchmarks/results/training_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from dial_core.allocator import keep_freed_memory
from dial_core.clicks.sampling import balancing_weights
from dial_core.config import load_params
from dial_core.data.canonical import write_dataset
from dial_core.data.synthetic import POTSDAM_CLASSES
from dial_core.data.synthetic_adapter import synthetic_dataset
from dial_core.models.segmenter import NetworkSpec, pick_device
from dial_core.studies import expand_networks
from dial_core.training.crops import ClickCropDataset, ClickPolicy, annotate_with_prediction, raster_crop_source
from dial_core.training.pretrain import PretrainConfig, make_optimiser

ROOT = Path(__file__).resolve().parents[1]


def loader_rate(data: ClickCropDataset, batch: int, workers: int) -> float:
    loader = DataLoader(data, batch_size=batch, num_workers=workers)
    start = time.perf_counter()
    n = sum(len(x) for x, _, _ in loader)
    return n / (time.perf_counter() - start)


def training_rate(spec: NetworkSpec, data: ClickCropDataset, policy: ClickPolicy, cfg: PretrainConfig, device: torch.device, steps: int) -> float:
    from dial_core.models.segmenter import Segmenter

    model = Segmenter(spec).to(device).train()
    opt, _ = make_optimiser(model, cfg)
    batches = [next(iter(DataLoader(data, batch_size=cfg.batch_size)))] * (steps + 1)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    for i, (x, y, idx) in enumerate(batches):
        if i == 1:  # the first step warms up (cuDNN autotuning, allocator)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        if policy.needs_prediction:
            x = annotate_with_prediction(model, x, y, idx, policy, 0, 0)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    keep_freed_memory()  # as every workflow job (dial_core.cli.run_step)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="*", default=[], help="overlays on params.yaml, e.g. config/studies.yaml")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_throughput.json"))
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml", ROOT / "workflow/schemas/params.schema.yaml", tuple(args.configfile))
    train = params["pretrain"]
    networks, _ = expand_networks(train)
    # Crops come from canonical GeoTIFFs through windowed reads, as in the workflow's pretraining.
    tmp = tempfile.TemporaryDirectory(prefix="dial-throughput-")
    info, samples = synthetic_dataset("bench", 4, max(4 * train["crop_size"], 512), "A", "full", 0)
    info = write_dataset(Path(tmp.name), info, samples)
    source = raster_crop_source(Path(tmp.name), info.images)
    device = pick_device()
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = PretrainConfig(1, train["batch_size"] * (args.steps + 1), train["crop_size"], train["batch_size"], train["lr"],
                         train["momentum"], train["weight_decay"], (), 0.1, 1, 0)
    rows = []
    for name, net in networks.items():
        spec = NetworkSpec(net["arch"], net["encoder"], len(POTSDAM_CLASSES), net["annotation"], net["encoding"], float(net["radius"]))
        policy = ClickPolicy(train["click_probability"], train["max_clicks"], balancing_weights(np.full(6, 1 / 6), net["frequency_balancing"]),
                             spec.click_encoder(), net["click_position"])
        data = ClickCropDataset(source, train["crop_size"], cfg.crops_per_epoch, policy, 0, 0)
        rows.append({
            "network": name, "device": device.type, "crop": train["crop_size"], "batch": train["batch_size"],
            "loader_crops_per_s": loader_rate(data, train["batch_size"], args.workers),
            "train_crops_per_s": training_rate(spec, data, policy, cfg, device, args.steps),
        })
        print(f"{name}: loader {rows[-1]['loader_crops_per_s']:.1f} crops/s, training {rows[-1]['train_crops_per_s']:.1f} crops/s", flush=True)
    table = pd.DataFrame(rows)
    table["loader_is_bottleneck"] = table["loader_crops_per_s"] < table["train_crops_per_s"]
    print(table.to_string(index=False, float_format="%.1f"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
                               "workers": args.workers, "rows": rows}, indent=2))
    print(f"wrote {out}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
