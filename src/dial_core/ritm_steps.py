"""The satellite-building report's study as workflow steps (issue 11): train RITM-style networks,
load a user's checkpoint, click the test crops, and put every model on one tidy NoC table.

Experiments (:data:`EXPERIMENTS`, the report's Table 1 plus what it could not run):

- ``from_scratch``: RITM trained on the binary dataset's training images from a random init;
- ``finetuning``: the same training started from the source model (RITM trained from scratch on
  ``ritm.source``, another building dataset);
- ``no_training``: the source model, or the user's ``ritm.checkpoint``, applied as is (the report
  used RITM's natural-image weights, which cannot be downloaded here);
- ``not_interactive``: the same network trained with all-zero click maps; at test time it ignores
  clicks, so its curve is its click-free IoU held for every click (NoC 1 where that reaches the
  threshold, else the budget: what clicks cannot change).

Test crops: the ``crop_size``² grid of the dataset's validation images (INRIA: images 1–5 of each
city), building-free crops excluded and counted (:mod:`dial_core.evaluation.noc_protocol`). The
project's AC and DISCA networks (``ritm.networks``) are clicked on the SAME crops by the same
``ritm`` user. Rows follow :data:`~dial_core.evaluation.noc_protocol.COLUMNS` plus ``dataset``,
``image``, ``model`` (``ritm`` or the network's name), ``experiment`` (a RITM experiment or the
method), ``budget`` and ``excluded`` (building-free crops of the whole test set).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dial_core.data.canonical import DatasetInfo, read_image, read_label
from dial_core.data.tiling import SIZE_MULTIPLE, fit_window
from dial_core.errors import CheckpointError, ConfigError, DataError
from dial_core.evaluation.noc_protocol import (
    COLUMNS,
    building_crops,
    crop_name,
    keep_crops,
    network_crop_protocol,
    ritm_crop_protocol,
)
from dial_core.evaluation.noc import foreground_iou
from dial_core.models.ritm import MAP_CHANNELS, RITMNet
from dial_core.training.crops import raster_crop_source
from dial_core.training.ritm_training import RitmTrainConfig, train_ritm
from dial_core.ritm_study import EXPERIMENTS, RITM_MODEL, experiment_label, experiments, needs_source  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)
TIDY = ["dataset", "image", "model", "experiment", *COLUMNS, "budget", "excluded"]


# --------------------------------------------------------------------------------------------
# networks and checkpoints
# --------------------------------------------------------------------------------------------

def build_ritm(network: Mapping) -> RITMNet:
    """A RITMNet of ``ritm.network`` (arch, encoder; encoder weights none: offline)."""
    return RITMNet(encoder=network["encoder"], arch=network["arch"], encoder_weights=network.get("encoder_weights"))


def ritm_payload(model: RITMNet, network: Mapping, experiment: str, trained_on: str, interactive: bool) -> dict:
    """A checkpoint that rebuilds itself: the network definition, whether it reads clicks, its weights."""
    return {"kind": "ritm", "network": {"arch": network["arch"], "encoder": network["encoder"]}, "experiment": experiment,
            "trained_on": trained_on, "interactive": bool(interactive), "state_dict": model.state_dict()}


def ritm_from_payload(payload: Mapping, path: str | Path = "checkpoint") -> tuple[RITMNet, bool]:
    """(model in eval mode, interactive) of a :func:`ritm_payload` checkpoint."""
    if payload.get("kind") != "ritm" or "network" not in payload:
        raise CheckpointError(f"{path} is not a RITM checkpoint of this workflow (no kind: ritm); "
                              "train it with the ritm rules (data/models/ritm/<dataset>/<experiment>.pt)")
    model = build_ritm(payload["network"])
    check_fits(model, payload["state_dict"], path, payload["network"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), bool(payload.get("interactive", True))


def state_dict_of(payload: Mapping, path: str | Path) -> dict[str, torch.Tensor]:
    """The weights inside a checkpoint: ``payload['state_dict']`` (this workflow's, RITM's own) or the
    payload itself when it is a plain state dict."""
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else payload
    if not isinstance(state, Mapping) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (a {type(payload).__name__}{': ' + ', '.join(map(str, list(payload)[:8])) if isinstance(payload, Mapping) else ''}); "
                              "give a file saved with torch.save(model.state_dict()) or a RITM checkpoint of this workflow")
    return dict(state)


def _listed(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … ({len(names)} in all)" if len(names) > limit else "")


def check_fits(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, network: Mapping | None = None) -> None:
    """Raise :class:`CheckpointError` naming ``path`` and what differs (missing keys, unexpected keys,
    shape mismatches) when ``state`` cannot be loaded into ``model`` strictly."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return
    parts = [f"{len(missing)} missing keys ({_listed(missing)})" if missing else "",
             f"{len(unexpected)} unexpected keys ({_listed(unexpected)})" if unexpected else "",
             f"{len(shapes)} shape mismatches, checkpoint vs network ({_listed(shapes, 3)})" if shapes else ""]
    wanted = f" (arch {network['arch']}, encoder {network['encoder']})" if network else ""
    raise CheckpointError(f"checkpoint {path} does not fit the RITM network{wanted}: {'; '.join(p for p in parts if p)}. "
                          "Point ritm.checkpoint to a RITMNet checkpoint of the same ritm.network (e.g. a "
                          "data/models/ritm/<dataset>/from_scratch.pt), or set ritm.network to the one it was trained with")


def user_checkpoint(path: str | Path, network: Mapping) -> RITMNet:
    """A user's checkpoint for ``no_training``, loaded into ``ritm.network`` (weights_only); one that
    does not fit fails with :func:`check_fits`'s message."""
    if not Path(path).is_file():
        raise CheckpointError(f"ritm.checkpoint {path} does not exist; give the path of a RITMNet checkpoint or null")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # e.g. a full pickle (RITM saves its config objects): weights_only refuses it
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"ritm.checkpoint {path} cannot be loaded with weights_only=True ({type(exc).__name__}: {first}); "
                              "it must hold tensors only: re-save it with torch.save({'state_dict': model.state_dict()}, path)") from None
    model = build_ritm(network)
    state = state_dict_of(payload, path)
    check_fits(model, state, path, network)
    model.load_state_dict(state)
    return model.eval()


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------

def ritm_train_config(training: Mapping, interactive: bool = True) -> RitmTrainConfig:
    """RitmTrainConfig of ``ritm.training`` (names as the dataclass's; lists become tuples)."""
    fields = {f.name for f in dataclasses.fields(RitmTrainConfig)}
    unknown = sorted(set(training) - fields)
    if unknown:
        raise ConfigError(f"ritm.training: unknown {', '.join(unknown)}; known: {', '.join(sorted(fields - {'interactive'}))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in training.items()}
    return RitmTrainConfig(**{**values, "interactive": bool(interactive)})


def check_binary_dataset(info: DatasetInfo, what: str) -> None:
    if info.n_classes != 2:
        raise DataError(f"{what}: dataset {info.name} has {info.n_classes} classes ({', '.join(info.class_names)}); the RITM "
                        "study is binary: define it with label_view: buildings (synthetic, potsdam) or a building dataset (inria, airs)")


def train_ritm_model(root: Path, info: DatasetInfo, split: Mapping, network: Mapping, training: Mapping, seed: int,
                     device: torch.device, interactive: bool = True, init: RITMNet | None = None,
                     workers: int = 0) -> tuple[RITMNet, dict]:
    """RITM's iterative training on the split's training images (``init``: the model finetuned);
    returns the model and its metrics (loss per epoch, crop size used, seconds). ``workers``: data-loader
    processes cutting crops and drawing their initial points (distance transforms per sample: on a GPU
    they would otherwise hold the training loop; the draws are seeded per crop, so the result is the same)."""
    check_binary_dataset(info, "RITM training")
    train_ids = list(split["train"])
    if not train_ids:
        raise DataError(f"RITM training: the split of {info.name} has no training images")
    source = raster_crop_source(root, train_ids)
    cfg = ritm_train_config(training, interactive)
    cfg = dataclasses.replace(cfg, crop_size=fit_window(cfg.crop_size, dict(zip(train_ids, source.shapes)), "ritm.training.crop_size"),
                              workers=workers)
    torch.manual_seed(seed)
    model = build_ritm(network)
    start = time.perf_counter()
    model, history = train_ritm(model, source, cfg, device, seed, init_state=None if init is None else init.state_dict(), log=log.info)
    return model, {"dataset": info.name, "train_images": len(train_ids), "crop_size": cfg.crop_size, "epochs": cfg.epochs,
                   "interactive": interactive, "finetuned": init is not None, "history": history,
                   "final_loss": history[-1]["loss"] if history else None, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------------------------
# evaluation on the test crops
# --------------------------------------------------------------------------------------------

def study_crops(root: Path, image_ids: Sequence[str], size: int) -> tuple[list[tuple[str, tuple[int, int, int, int]]], int]:
    """(image id, window) of every kept ``size``² crop of ``image_ids``, and how many were excluded
    (no building pixel); a test set without any crop is a DataError naming ``ritm.crop_size``."""
    kept, excluded, total = [], 0, 0
    for image_id in image_ids:
        label = read_label(root, image_id)
        windows = building_crops(label, size)
        total += len(windows)
        ok, dropped = keep_crops(label, windows)
        kept += [(image_id, w) for w in ok]
        excluded += dropped
    if not kept:
        raise DataError(f"RITM evaluation: {len(image_ids)} test images give {total} crops of {size}² and none holds a building "
                        "pixel; lower ritm.crop_size or check the dataset's labels")
    return kept, excluded


def plain_rows(model: RITMNet, image: np.ndarray, label: np.ndarray, budget: int, threshold: float, crop: str,
               ignore_index: int = 255, device: torch.device | None = None) -> list[dict]:
    """A network that ignores clicks (``not_interactive``): its click-free prediction (all-zero maps,
    as trained), the same IoU at clicks 1..budget, ``clicked`` False (module doc)."""
    from dial_core.evaluation.noc_protocol import _image_tensor
    from dial_core.interactive.inference import pad_to_multiple

    device = device or next(model.parameters()).device
    start = time.perf_counter()
    height, width = label.shape
    x = pad_to_multiple(_image_tensor(image).to(device))
    with torch.no_grad():
        logits, _ = model.eval()(x, torch.zeros(1, MAP_CHANNELS, *x.shape[-2:], device=device))
    prediction = (torch.sigmoid(logits[0, 0, :height, :width]).cpu().numpy() > threshold).astype(np.uint8)
    iou = foreground_iou(label, prediction, ignore_index)
    seconds = time.perf_counter() - start
    return [{"crop": crop, "method": "ritm", "click": k, "iou": iou, "iou0": iou, "seconds": seconds if k == 1 else 0.0,
             "click_row": -1, "click_col": -1, "positive": False, "clicked": False} for k in range(1, budget + 1)]


def _on_crops(root: Path, info: DatasetInfo, split: Mapping, protocol: Mapping, model_name: str, experiment: str,
              rows_of: Callable[[np.ndarray, np.ndarray, str, int], list[dict]]) -> pd.DataFrame:
    """Every kept test crop through ``rows_of(image, label, crop name, index)``, as one tidy table."""
    crops, excluded = study_crops(root, list(split["val"]), int(protocol["crop_size"]))
    rows, start, current = [], time.perf_counter(), None
    for index, (image_id, (r, c, h, w)) in enumerate(crops):
        if image_id != current:
            image, label, current = read_image(root, image_id), read_label(root, image_id), image_id
        name = crop_name(image_id, (r, c, h, w))
        out = rows_of(image[r : r + h, c : c + w], label[r : r + h, c : c + w], name, index)
        rows += [{"dataset": info.name, "image": image_id, "model": model_name, "experiment": experiment, **row} for row in out]
        if (index + 1) % max(1, len(crops) // 10) == 0 or index + 1 == len(crops):
            log.info("%s/%s: %d/%d crops (%d excluded), %.1f s", model_name, experiment, index + 1, len(crops), excluded,
                     time.perf_counter() - start)
    table = pd.DataFrame(rows).assign(budget=int(protocol["budget"]), excluded=int(excluded))
    return table[TIDY]


def evaluate_ritm_model(root: Path, info: DatasetInfo, split: Mapping, model: RITMNet, interactive: bool, experiment: str,
                        protocol: Mapping, device: torch.device | None = None) -> pd.DataFrame:
    """One RITM experiment on the test crops: the ``ritm`` user's clicks (:func:`ritm_crop_protocol`),
    or the click-free prediction held (:func:`plain_rows`) for a network trained without clicks."""
    check_binary_dataset(info, f"RITM evaluation of {experiment}")
    budget, threshold = int(protocol["budget"]), float(protocol["threshold"])

    def rows_of(image, label, name, _index):
        if not interactive:
            return plain_rows(model, image, label, budget, threshold, name, info.ignore_index, device)
        return ritm_crop_protocol(model, image, label, budget, float(protocol["radius"]), threshold, device, name,
                                  protocol.get("previous", "mask"), info.ignore_index)

    return _on_crops(root, info, split, protocol, RITM_MODEL, experiment, rows_of)


def crop_tiling(crop_size: int, overlap: int = 0) -> dict:
    """Inference windows covering a whole crop (a multiple of 32 at least as large)."""
    return {"size": -(-int(crop_size) // SIZE_MULTIPLE) * SIZE_MULTIPLE, "overlap": overlap}


def evaluate_network_model(root: Path, info: DatasetInfo, split: Mapping, model, network: str, method: str,
                           evaluation: Mapping, protocol: Mapping, seed: int) -> pd.DataFrame:
    """A project network (AC, DISCA …) on the same crops, clicked by the ``ritm`` user
    (:func:`network_crop_protocol`); ``evaluation``: the params' section with the method's lr resolved
    (:func:`network_evaluation`)."""
    from dial_core.steps import interaction_config

    check_binary_dataset(info, f"RITM evaluation of {network}/{method}")
    cfg = interaction_config(method, dict(evaluation), crop_tiling(protocol["crop_size"]))
    budget = int(protocol["budget"])

    def rows_of(image, label, name, index):
        return network_crop_protocol(model, image, label, method, cfg, np.random.default_rng([seed, 11, index]), budget, name,
                                     tuple(info.class_names))

    return _on_crops(root, info, split, protocol, network, method, rows_of)


def network_evaluation(evaluation: Mapping, method: str, disca_lr: float | str, calibration: str | Path | None) -> dict:
    """``evaluation`` with an adapting ``method``'s lr set from ``ritm.networks.disca_lr``: the lr
    calibrate_disca chose (``calibrated``, ``calibration`` its JSON file) or the number given."""
    import json

    from dial_core.interactive.methods import method as interactive_method
    from dial_core.steps import with_lr

    if not interactive_method(method).adapts:
        return dict(evaluation)
    if disca_lr == "calibrated":
        if not calibration:
            raise ConfigError(f"ritm.networks.disca_lr is calibrated but no calibration file of {method} was given; "
                              "run the calibrate_disca rule or set ritm.networks.disca_lr to a number (e.g. 1.0e-4)")
        lr = json.loads(Path(calibration).read_text())["lr"]
        log.info("%s lr %.3g from %s", method, lr, calibration)
        return with_lr(dict(evaluation), method, lr)
    return with_lr(dict(evaluation), method, float(disca_lr))
