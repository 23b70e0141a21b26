"""Prediction with uncertainty vs plain prediction, per acquisition function (DIAL Table III).

    ./dial python benchmarks/acquisition_cost.py [--side 2048] [--window 512] [--overlap 128] [--repeats 3] [--device cuda]

What: on one random side² image, the time of ``predict_with_uncertainty`` for every acquisition of
``ACQUISITIONS`` as a ratio to ``predict_probs`` (plain prediction, the same windows): each run is
paired with a plain run just before it, and the ratio is the median over ``--repeats`` rounds of the
pairs' ratios (after a one-window warm-up of each), so that a drift in the machine's load cancels. Network: the demo's (LinkNet-ResNet18, 6
classes, DT per-class click channels), untrained and seeded (the time does not depend on the
weights), no clicks; a seeded untrained ConfidNet head; MC dropout with the default 5 passes.
Why: DIAL Table III (GPU, 6000² image) gives entropy 1.02×, ConfidNet 1.27×, MC dropout 2.22×, ODIN
1.60× the random order's 9.9 s. What each function must cost follows from the passes it runs per
window, so the script also times them on the image's windows (median over windows, batch 1, no
grad): E encoder, D decoder + segmentation head, C ConfidNet head, F whole forward, F+B forward and
backward to the input (weights frozen), and derives bounds: ConfidNet (E + D + C)/(E + D); MC dropout
(E + P·D)/(E + D), the encoder once and P decoder passes (P naive full passes would cost P×); ODIN
(F + B + F)/F. Targets (the issue), printed as PASS/FAIL, never an exit status: entropy <= 1.03×;
ConfidNet <= its bound × 1.05; MC dropout <= its bound × 1.10; BALD and area disagreement <= MC
dropout's seconds × 1.05; ODIN <= its bound × 1.05.
ConfidNet on CPU: C is mostly its 3×3 convolutions 32→120→64 at full resolution and costs more than
encoder and decoder together. The networks run channels-last (models/segmenter.py: channels_last); the
script also times C in the contiguous layout (on the 2-core CPU about 40 % slower), under bf16 autocast, and on
half-resolution features (the DIAL code's head upsamples with a stride-2 transposed convolution
*first*, so its 3×3 convolutions also run at full resolution: the half-resolution row is what
running them before the upsampling would save, a change of method). The decoder on the batch of P
(D_P) is timed too: it costs less than P·D (on a GPU far less, a batch-1 window does not fill it). Writes benchmarks/results/acquisition_cost.json (acquisition_cost_cuda.json on a GPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dial_core.allocator import keep_freed_memory
from dial_core.active.acquisition import ACQUISITIONS, AcquisitionConfig
from dial_core.active.uncertainty import predict_with_uncertainty
from dial_core.data.tiling import tile_windows
from dial_core.interactive.inference import predict_probs
from dial_core.models.confidnet import ConfidNet
from dial_core.models.segmenter import NetworkSpec, Segmenter, channels_last, network_input

RESULTS = Path(__file__).resolve().parent / "results"
DIAL_GPU = {"random": 1.0, "entropy": 1.02, "confidnet": 1.27, "mc_dropout": 2.22, "odin": 1.60}  # random = 9.9 s
PROBE_WINDOWS = 10  # windows the per-window passes are timed on


def timed(fn, *args):
    """(result, seconds), the device synchronised before and after."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args)
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def window_passes(model: Segmenter, confidnet: ConfidNet, x: torch.Tensor, passes: int) -> dict[str, float]:
    """Seconds of E, D, C, F, F+B and DP (D on a batch of ``passes``, as MC dropout runs it) on one (1, C, h, w) window."""
    net, x = model.net, channels_last(x)  # the layout Segmenter.forward gives its input
    with torch.no_grad():
        features, e = timed(net.encoder, x)
        (decoded, _), d = timed(lambda: (dec := net.decoder(features), net.segmentation_head(dec)))
        _, c = timed(confidnet, decoded)
        batch = [channels_last(f.repeat(passes, 1, 1, 1)) for f in features]  # as mc_logits: the weights' layout
        _, dp = timed(lambda: net.segmentation_head(net.decoder(batch)))
        _, f = timed(model, x)

    def forward_backward():  # ODIN's first half: grad of the tempered CE of the argmax, to the input only
        xg = x.clone().requires_grad_(True)
        logits = model(xg)
        return torch.autograd.grad(F.cross_entropy(logits / 100.0, logits.argmax(dim=1), reduction="sum"), xg)

    model.requires_grad_(False)
    _, fb = timed(forward_backward)
    model.requires_grad_(True)
    return {"E": e, "D": d, "C": c, "F": f, "FB": fb, "DP": dp}


def confidnet_variants(confidnet: ConfidNet, decoded: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds of the ConfidNet head: as built (channels-last), in the contiguous layout, bf16
    autocast, half resolution."""
    contiguous = copy.deepcopy(confidnet).to(memory_format=torch.contiguous_format)
    runs = {"as_built": lambda: confidnet(decoded),
            "contiguous": lambda: contiguous(decoded.contiguous()),
            "half_resolution": lambda: confidnet(F.avg_pool2d(decoded, 2))}

    def bf16():
        with torch.autocast(decoded.device.type, dtype=torch.bfloat16):
            return confidnet(decoded)

    runs["bf16_autocast"] = bf16
    with torch.no_grad():
        return {k: statistics.median([timed(fn)[1] for _ in range(repeats + 1)][1:]) for k, fn in runs.items()}


def main() -> None:
    keep_freed_memory()  # as every workflow job (dial_core.cli.run_step)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Segmenter(NetworkSpec("linknet", "resnet18", 6, "per_class", "dt", 10.0)).to(device).eval()
    confidnet = ConfidNet(model.feature_channels).to(device).eval()
    cfg = AcquisitionConfig()
    image = np.random.default_rng(0).integers(0, 256, (args.side, args.side, 3), dtype=np.uint8)

    # 1. whole-image prediction, plain and per acquisition, round-robin
    runs = {"plain": lambda img: predict_probs(model, img, None, args.window, args.overlap)}
    for name in ACQUISITIONS:
        runs[name] = lambda img, name=name: predict_with_uncertainty(
            model, img, None, name, args.window, args.overlap, cfg, confidnet, seed=0)
    for fn in runs.values():  # warm-up on one window
        fn(image[: args.window, : args.window])
    # Each function is timed right after its own plain run and scored by that pair's ratio: the
    # machine's load drifts by ±10 % over minutes, far more than entropy's 3 % target.
    times: dict[str, list[float]] = {k: [] for k in runs}
    pair_ratios: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(args.repeats):
        for name, fn in runs.items():
            plain = timed(runs["plain"], image)[1]
            times["plain"].append(plain)
            if name != "plain":
                times[name].append(timed(fn, image)[1])
                pair_ratios[name].append(times[name][-1] / plain)
        print(f"round {i + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    seconds = {k: statistics.median(v) for k, v in times.items()}

    # 2. the passes per window, and the bounds they give
    x = network_input(image, None, model.spec.n_annotation_channels).to(device)
    windows = tile_windows(args.side, args.side, args.window, args.overlap)
    crops = [x[:, r : r + h, c : c + w].unsqueeze(0) for r, c, h, w in windows[:PROBE_WINDOWS]]
    P = cfg.mc_dropout.passes
    window_passes(model, confidnet, crops[0], P)  # warm-up
    per = [window_passes(model, confidnet, crop, P) for crop in crops]
    passes = {k: statistics.median(p[k] for p in per) for k in per[0]}
    E, D, C, Fw = passes["E"], passes["D"], passes["C"], passes["F"]
    B = passes["FB"] - Fw
    bounds = {"confidnet": (E + D + C) / (E + D), "mc_dropout": (E + P * D) / (E + D), "odin": (Fw + B + Fw) / Fw}
    with torch.no_grad():
        decoded = model.net.decoder(model.net.encoder(crops[0]))
    variants = confidnet_variants(confidnet, decoded, args.repeats)

    # 3. targets
    ratio = {k: statistics.median(pair_ratios[k]) if k != "plain" else 1.0 for k in runs}
    targets = {"entropy": ("<= 1.03", ratio["entropy"] <= 1.03),
               "confidnet": ("<= bound x 1.05", ratio["confidnet"] <= bounds["confidnet"] * 1.05),
               "mc_dropout": ("<= bound x 1.10", ratio["mc_dropout"] <= bounds["mc_dropout"] * 1.10),
               "bald": ("<= mc_dropout x 1.05", ratio["bald"] <= ratio["mc_dropout"] * 1.05),
               "area_disagreement": ("<= mc_dropout x 1.05", ratio["area_disagreement"] <= ratio["mc_dropout"] * 1.05),
               "odin": ("<= bound x 1.05", ratio["odin"] <= bounds["odin"] * 1.05)}
    rows = [{"acquisition": k, "seconds": seconds[k], "runs": times[k], "pair_ratios": pair_ratios[k], "ratio": ratio[k], "bound": bounds.get(k),
             "dial_gpu_ratio": DIAL_GPU.get(k), "target": targets.get(k, ("", None))[0],
             "pass": targets.get(k, ("", None))[1]} for k in runs]

    print(f"{args.side}² image, {len(windows)} windows of {args.window} (overlap {args.overlap}), {device}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} paired ratios")
    print(f"{'acquisition':<19}{'seconds':>9}{'ratio':>8}{'bound':>8}{'DIAL GPU':>10}  {'target':<22}pass")
    for r in rows:
        bound = f"{r['bound']:.2f}" if r["bound"] else "-"
        dial = f"{r['dial_gpu_ratio']:.2f}" if r["dial_gpu_ratio"] else "-"
        verdict = "" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        print(f"{r['acquisition']:<19}{r['seconds']:>9.2f}{r['ratio']:>8.2f}{bound:>8}{dial:>10}  {r['target']:<22}{verdict}")
    print(f"per window (median of {len(per)}): E {E * 1e3:.1f} ms, D {D * 1e3:.1f} ms, C {C * 1e3:.1f} ms, "
          f"F {Fw * 1e3:.1f} ms, B {B * 1e3:.1f} ms (F+B {passes['FB'] * 1e3:.1f} ms); "
          f"D on a batch of {P} {passes['DP'] * 1e3:.1f} ms")
    print(f"MC dropout bound (E + P·D)/(E + D) with P={P}: {bounds['mc_dropout']:.2f}; with D of the batch of {P} "
          f"measured, (E + D_P)/(E + D): {(E + passes['DP']) / (E + D):.2f}; {P} naive full passes: {P}.00")
    print("ConfidNet head per window: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in variants.items()))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("acquisition_cost.json" if device.type == "cpu" else f"acquisition_cost_{device.type}.json")
    out.write_text(json.dumps({
        "machine": {"device": str(device), "device_name": name, "platform": platform.platform(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "side": args.side, "window": args.window, "overlap": args.overlap, "repeats": args.repeats,
        "windows": len(windows), "mc_passes": P, "rows": rows, "per_window_s": {**passes, "B": B},
        "per_window_runs": per, "bounds": bounds, "confidnet_variants_s": variants}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
