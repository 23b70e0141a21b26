"""Diagnosis: DISCA's patch protocol under domain shift, uncertainty-ordered vs random patches.

    ./dial python benchmarks/disca_patch_diagnosis.py [--target synthetic_b] [--model data/models/pretrain/synthetic/linknet.pt]
                                                      [--images 6] [--lrs 1e-5 1e-4] [--acquisitions entropy random]

Runs on a demo (or any) work folder after `./dial demo`. On the first ``--images`` *training*
images of the target (the source network never trained on the target; validation images are never
read) it runs the patch protocol with DISCA for every lr × acquisition and prints the mean mIoU gain
per step, plus, per image, how much the acquisition's top patches concentrate the errors (error
share of the top ``--patches`` patches vs an average patch) and the share of errors made with
below-median entropy. Writes benchmarks/results/disca_patch_diagnosis.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from dial_core.allocator import keep_freed_memory
from dial_core.active.acquisition import entropy_map
from dial_core.data.canonical import load_info
from dial_core.data.tiling import tile_windows
from dial_core.evaluation.protocols import patch_protocol
from dial_core.interactive.inference import predict_probs
from dial_core.models.checkpoint import load_checkpoint
from dial_core.models.segmenter import segmenter_from_state
from dial_core.steps import _samples, inference_tiling, interaction_config, with_lr

ROOT = Path(__file__).resolve().parents[1]


def error_concentration(probs: np.ndarray, label: np.ndarray, size: int, top: int) -> dict:
    """Error share of the ``top`` most uncertain (entropy) patches vs all patches, and the share of
    the errors made with below-median entropy."""
    wrong, entropy = probs.argmax(0) != label, entropy_map(probs)
    windows = tile_windows(*label.shape, size, 0)
    scored = sorted(windows, key=lambda w: -entropy[w[0] : w[0] + w[2], w[1] : w[1] + w[3]].mean())
    share = [wrong[r : r + h, c : c + w].mean() for r, c, h, w in scored]
    confident = wrong & (entropy < np.median(entropy))
    return {"error_top_patches": float(np.mean(share[:top])), "error_all_patches": float(np.mean(share)),
            "confident_error_share": float(confident.sum() / max(wrong.sum(), 1))}


def main() -> None:
    keep_freed_memory()  # as every workflow job (dial_core.cli.run_step)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--target", default="synthetic_b")
    parser.add_argument("--model", default="data/models/pretrain/synthetic/linknet.pt")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-5, 1e-4])
    parser.add_argument("--acquisitions", nargs="+", default=["entropy", "random"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    params = yaml.safe_load((work / "params.yaml").read_text())
    root = work / "data/processed" / args.target
    info = load_info(root)
    ids = json.loads((root / "split.json").read_text())["train"][: args.images]
    model = segmenter_from_state(load_checkpoint(work / args.model)).eval()
    window, overlap = inference_tiling(root, ids, params["tiling"])
    tiling = {**params["tiling"], "size": window, "overlap": overlap}
    evaluation, size, budget = params["evaluation"], params["evaluation"]["patches"]["size"], params["evaluation"]["patches"]["max_patches"]
    rows, images = [], {}
    for position, (image_id, (image, label)) in enumerate(zip(ids, _samples(root, ids))):
        with torch.no_grad():
            probs, _ = predict_probs(model, image, None, window, overlap)
        images[image_id] = error_concentration(probs, label, size, budget)
        for lr in args.lrs:
            cfg = interaction_config("disca", with_lr(evaluation, "disca", lr), tiling, "patches")
            for acquisition in args.acquisitions:
                out = patch_protocol(model, image, label, info.class_names, size, acquisition, cfg,
                                     np.random.default_rng([params["seed"], position]), None, budget, image_id=image_id)
                rows += [{"image": image_id, "lr": lr, "acquisition": acquisition, "step": r["step"], "miou": r["miou"]} for r in out]
        print(image_id, images[image_id], flush=True)
    table = pd.DataFrame(rows)
    curves = table.pivot_table(index=["lr", "acquisition", "image"], columns="step", values="miou") * 100
    gains = curves.sub(curves[0], axis=0)
    print("mean mIoU gain (points) per step:")
    print(gains.groupby(level=["lr", "acquisition"]).mean().round(2).to_string())
    out = ROOT / "benchmarks/results/disca_patch_diagnosis.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    final = gains[gains.columns.max()]
    out.write_text(json.dumps({"target": args.target, "images": images,
                               "final_gain": {f"{lr:g}/{a}/{i}": float(v) for (lr, a, i), v in final.items()}}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
