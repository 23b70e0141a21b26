"""One function per workflow step: builds the library's configs from params dictionaries and
runs the step on a canonical dataset folder. Scripts stay thin; tests call these directly."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dial_core.clicks.agents import needs_recorded
from dial_core.clicks.click_log import check_click_folder, click_log_folder, read_click_log
from dial_core.clicks.sampling import balancing_weights
from dial_core.clicks.types import Click
from dial_core.data.canonical import DatasetInfo, class_shares, raster_georef, raster_shape, read_image, read_label
from dial_core.data.splits import nested_subset
from dial_core.data.tiling import fit_tiling, fit_window
from dial_core.errors import ConfigError, DataError
from dial_core.evaluation.protocols import InteractionConfig, click_protocol, patch_protocol
from dial_core.evaluation.validation import validation_scores
from dial_core.interactive.disca import DiscaConfig
from dial_core.interactive.methods import adaptation_settings
from dial_core.interactive.methods import method as interactive_method
from dial_core.models.confidnet import ConfidNet
from dial_core.models.segmenter import NetworkSpec, Segmenter
from dial_core.training.confidnet import ConfidNetConfig, train_confidnet
from dial_core.training.crops import ClickPolicy, raster_crop_source
from dial_core.training.pretrain import DIVERGENCE_FACTOR, PretrainConfig, data_identity, pretrain

log = logging.getLogger(__name__)


def network_spec(network: dict, info: DatasetInfo) -> NetworkSpec:
    """The NetworkSpec of a resolved network definition (see :mod:`dial_core.studies`)."""
    return NetworkSpec(
        network["arch"], network["encoder"], info.n_classes, network["annotation"],
        network["encoding"], float(network["radius"]), network.get("encoder_weights"),
    )


def _samples(root: Path, ids: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for image_id in ids:
        yield read_image(root, image_id), read_label(root, image_id)


def inference_tiling(root: Path, ids: Sequence[str], tiling: dict) -> tuple[int, int]:
    """``tiling`` (size, overlap) fitted to the images ``ids`` will be predicted on (see :func:`fit_tiling`)."""
    return fit_tiling(tiling["size"], tiling["overlap"], {i: raster_shape(root, i) for i in ids})


def pretrain_network(
    root: Path, info: DatasetInfo, split: dict, network: dict, train: dict, tiling: dict,
    seed: int, device: torch.device, threads: int, state_path: Path | None,
) -> tuple[Segmenter, dict]:
    """Train on (a nested subset of) ``split['train']``, validate without clicks on ``split['val']``."""
    train_ids = nested_subset(split["train"], network["train_fraction"], seed)
    spec = network_spec(network, info)
    shares = class_shares(root, train_ids, info.n_classes, info.ignore_index)
    policy = ClickPolicy(
        train["click_probability"], train["max_clicks"], balancing_weights(shares, network["frequency_balancing"]),
        spec.click_encoder(), network["click_position"],
    )
    cfg = PretrainConfig(
        epochs=train["epochs"], crops_per_epoch=train["crops_per_epoch"], crop_size=train["crop_size"],
        batch_size=train["batch_size"], lr=train["lr"], momentum=train["momentum"],
        weight_decay=train["weight_decay"], milestones=tuple(train["milestones"]), gamma=train["gamma"],
        checkpoint_every=train["checkpoint_every"], seed=seed,
        workers=threads if device.type == "cuda" else 0, mixed_precision=train["mixed_precision"],
        divergence_factor=train.get("divergence_factor", DIVERGENCE_FACTOR),
    )
    source = raster_crop_source(root, train_ids)
    # images smaller than the crop / window: the sizes actually used fit them (and are recorded)
    cfg = dataclasses.replace(cfg, crop_size=fit_window(cfg.crop_size, dict(zip(train_ids, source.shapes)), "pretrain.crop_size"))
    window, overlap = inference_tiling(root, split["val"], tiling)  # before training: a tiny image fails fast
    model, losses = pretrain(spec, source, policy, cfg, device, state_path, data=data_identity(info.name, train_ids, info.checksums))
    scores = validation_scores(model, _samples(root, split["val"]), info.class_names, window, overlap)
    return model, {
        "val_miou": scores["miou"], "val_accuracy": scores["accuracy"], "val_iou": scores["iou"],
        "final_loss": losses[-1] if losses else None, "epochs": cfg.epochs, "train_images": len(train_ids),
        "crop_size": cfg.crop_size, "inference_window": window, "inference_overlap": overlap,
        "train_class_shares": dict(zip(info.class_names, map(float, shares))), "network_definition": network,
    }


def train_confidnet_step(root: Path, info: DatasetInfo, split: dict, segmenter: Segmenter, params: dict, train: dict, seed: int, device: torch.device, threads: int) -> tuple[ConfidNet, dict]:
    """ConfidNet on the frozen segmenter, crops as in pretraining (clicks with its own probability)."""
    shares = class_shares(root, split["train"], info.n_classes, info.ignore_index)
    policy = ClickPolicy(params["click_probability"], train["max_clicks"], balancing_weights(shares, True),
                         segmenter.spec.click_encoder())
    source = raster_crop_source(root, split["train"])
    crop = fit_window(train["crop_size"], dict(zip(split["train"], source.shapes)), "pretrain.crop_size")
    cfg = ConfidNetConfig(params["epochs"], params["crops_per_epoch"], crop, params["batch_size"], params["lr"], seed,
                          workers=threads if device.type == "cuda" else 0)
    head, losses = train_confidnet(segmenter, source, policy, cfg, device)
    return head, {"final_mse": losses[-1], "epochs": cfg.epochs, "crop_size": crop}


def disca_config(d: dict, protocol: str = "clicks", method: str = "disca") -> DiscaConfig:
    """DiscaConfig of resolved adaptation settings (:func:`adaptation_settings`) for one protocol
    (``ac_drop_probability`` may be a number or {clicks, patches}); a ``calibrated`` lr must have
    been resolved by :func:`with_disca_lr`."""
    drop = d["ac_drop_probability"]
    if isinstance(drop, dict):
        drop = drop[protocol]
    if not isinstance(d["lr"], (int, float)):
        raise ConfigError(f"the lr of {method} is {d['lr']!r} but no calibration file was read (rule calibrate_disca, "
                          f"reports/metrics/calibration/<trained on>/<dataset>/<network>/{method}.json); or set a number "
                          f"such as 2.0e-6 (evaluation.disca.lr, or evaluation.arms.{method}.lr)")
    decay = d.get("patch_lr_decay", "constant") if protocol == "patches" else "constant"
    return DiscaConfig(float(d["lr"]), d["steps"], d["regularisation"], float(drop), d.get("p0", "initial"), decay)


def with_lr(evaluation: dict, method: str, lr: float) -> dict:
    """``evaluation`` with ``method``'s learning rate set to ``lr`` (in ``evaluation.arms.<method>``)."""
    arms = dict(evaluation.get("arms") or {})
    arms[method] = {**(arms.get(method) or {}), "lr": float(lr)}
    return {**evaluation, "arms": arms}


def with_disca_lr(evaluation: dict, calibration: str | Path | None, method: str = "disca") -> dict:
    """``evaluation`` with ``method``'s ``lr: calibrated`` replaced by the lr the calibration file
    chose. Without a file (AC runs need none) it is returned as is; an adapting method then stops
    in :func:`disca_config`."""
    if adaptation_settings(evaluation, method)["lr"] != "calibrated" or not calibration:
        return evaluation
    chosen = json.loads(Path(calibration).read_text())["lr"]
    log.info("%s lr %.3g from %s", method, chosen, calibration)
    return with_lr(evaluation, method, chosen)


def interaction_config(method: str, evaluation: dict, tiling: dict, protocol: str = "clicks") -> InteractionConfig:
    """The protocols' config for ``method``: an adapting method's settings are ``evaluation.disca``
    with its ``evaluation.arms`` overrides, minus the parts the method switches off (λ, channels)."""
    arm = interactive_method(method)
    d = adaptation_settings(evaluation, method)
    return InteractionConfig(
        method=method, agent=evaluation["agent"], agent_options=dict(evaluation.get("agent_options") or {}),
        disca=arm.adaptation(disca_config(d, protocol, method)) if arm.adapts else DiscaConfig(0.0, 0, 0.0, 0.0),
        window=tiling["size"], overlap=tiling["overlap"], disca_window=d["window"],
    )


def calibrate_disca(root: Path, info: DatasetInfo, split: dict, model: Segmenter, evaluation: dict, tiling: dict, seed: int,
                    network: str, trained_on: str | None = None, method: str = "disca") -> dict:
    """DISCA's lr for one network clicked on ``info``'s dataset: the grid value with the best mean
    final-mIoU gain of the click protocol (``calibration.clicks`` clicks) on the split's
    ``calibration`` images.

    Those are training images held out of every network's training (``split.calibration_images``),
    so the network meets them new, as it meets the evaluation images; validation images are never
    read. The lr does not transfer across domains (an lr that helps under shift hurts in-domain), so
    a transfer target (``trained_on`` another dataset) is calibrated on its own held-out images.
    ``method``: DISCA or any adapting ablation arm (each gets its own lr).
    """
    if not interactive_method(method).adapts:
        raise ConfigError(f"calibrate_disca: {method} does not adapt the weights; it has no learning rate to calibrate")
    settings = evaluation["disca"]["calibration"]
    ids = list(split.get("calibration") or [])
    if not ids:
        raise DataError(f"calibrate_disca: the split of {info.name} holds out no calibration images; set "
                        "split.calibration_images (e.g. 2) so DISCA's lr is tuned on training images no network trained on, "
                        "or give evaluation.disca.lr a number (e.g. 2.0e-6)")
    agent = settings.get("agent") or evaluation["agent"]
    if needs_recorded(agent, evaluation.get("agent_options")):
        raise ConfigError("evaluation.disca.calibration.agent: the calibration images have no recorded clicks; "
                          "name a simulated user (e.g. largest_mistake_centre) for the calibration")
    window, overlap = inference_tiling(root, ids, tiling)
    base = {**evaluation, "agent": agent}
    results, start = [], time.perf_counter()
    samples = list(_samples(root, ids))
    for lr in [None, *settings["grid"]]:  # None: AC, the reference every lr is compared with
        tried = "ac" if lr is None else method
        cfg = interaction_config(tried, with_lr(base, method, lr or 0.0), {**tiling, "size": window, "overlap": overlap})
        gains = []
        for i, (image, label) in enumerate(samples):
            rows = click_protocol(model, image, label, info.class_names, settings["clicks"], cfg,
                                  np.random.default_rng([seed, i]), image_id=ids[i])
            gains.append(rows[-1]["miou"] - rows[0]["miou"])
        results.append({"method": tried, "lr": lr, "mean_gain": float(np.mean(gains)),
                        "gains": dict(zip(ids, map(float, gains)))})
        log.info("calibrate %s: %s lr %s mean gain %+.4f (%.0f s)", network, tried, lr, np.mean(gains), time.perf_counter() - start)
    grid = [r for r in results if r["lr"] is not None]
    best = max(grid, key=lambda r: (r["mean_gain"], -r["lr"]))  # ties: the smaller lr
    return {"dataset": info.name, "trained_on": trained_on or info.name, "network": network, "method": method, "lr": best["lr"],
            "criterion": "mean final mIoU gain, click protocol",
            "images": ids, "clicks": settings["clicks"], "agent": agent, "ac_mean_gain": results[0]["mean_gain"],
            "results": results, "seconds": time.perf_counter() - start}


def recorded_clicks(root: Path, info: DatasetInfo, val_ids: Sequence[str], images: Sequence[str], evaluation: dict) -> dict[str, list[Click]]:
    """A person's clicks on each evaluated image when the agent replays them (``human``), else {}.
    Clicks in map coordinates are mapped with each image's transform; a file for an image that is
    not a validation image, a missing file, a click outside its image or an unknown class stops
    with a DataError naming the file and the click."""
    if not needs_recorded(evaluation["agent"], evaluation.get("agent_options")):
        return {}
    files = check_click_folder(click_log_folder(evaluation.get("agent_options"), info.name), val_ids, images)
    return {i: read_click_log(files[i], raster_shape(root, i), info.n_classes, *raster_georef(root, i)) for i in images}


def _tidy(rows: list[dict], **keys) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for i, (name, value) in enumerate(keys.items()):
        frame.insert(i, name, value)
    return frame


def _evaluation_setup(root: Path, info: DatasetInfo, val_ids: Sequence[str], images: Sequence[str] | None,
                      method: str, evaluation: dict, tiling: dict, what: str, protocol: str = "clicks") -> tuple[InteractionConfig, list[str], list[int]]:
    """The interaction config with the inference window fitted to every validation image, the
    images to evaluate and their positions in ``val_ids`` (which seed their generators): neither
    the window nor an image's rows depend on which subset ``evaluation.max_images`` selected."""
    images = list(val_ids) if images is None else list(images)
    index = {image_id: i for i, image_id in enumerate(val_ids)}
    unknown = [i for i in images if i not in index]
    if unknown:
        raise DataError(f"{what}: images {', '.join(unknown[:5])} are not validation images of {info.name}; "
                        "re-run the evaluation_images rule after a new split")
    window, overlap = inference_tiling(root, val_ids, tiling)
    log.info("%s on %s: %d of %d validation images, inference window %d px, overlap %d px",
             what, info.name, len(images), len(val_ids), window, overlap)
    cfg = interaction_config(method, evaluation, {**tiling, "size": window, "overlap": overlap}, protocol)
    return cfg, images, [index[i] for i in images]


def _progress(what: str, done: int, total: int, image_id: str, shape: tuple[int, ...], rows: list[dict], unit: str, began: float, start: float) -> None:
    """One log line per evaluated image: long evaluations show where they are in the rule's log."""
    placed = sum(r["click_row"] >= 0 for r in rows[1:])  # the simulated user may find nothing to click
    log.info("%s: image %d/%d %s (%d×%d): %d %s done, %d clicks placed, mIoU %.3f → %.3f, %.1f s (%.1f s elapsed)",
             what, done, total, image_id, shape[0], shape[1], len(rows) - 1, unit, placed,
             rows[0]["miou"], rows[-1]["miou"], time.perf_counter() - began, time.perf_counter() - start)


def evaluate_clicks(root: Path, info: DatasetInfo, val_ids: list[str], model: Segmenter, method: str, evaluation: dict, tiling: dict, seed: int, network: str, train_dataset: str | None = None, images: Sequence[str] | None = None) -> pd.DataFrame:
    """The DISIR / DISCA click protocol on the validation images, as one tidy table.

    ``images`` is the evaluated subset of ``val_ids`` (``evaluation.max_images``; default all).
    ``train_dataset`` names the dataset the network was trained on when it differs from ``info``
    (domain adaptation); the table then carries it as a column.
    """
    what = f"clicks {network}/{method}"
    cfg, images, positions = _evaluation_setup(root, info, val_ids, images, method, evaluation, tiling, what)
    recorded = recorded_clicks(root, info, val_ids, images, evaluation)
    frames = []
    start = time.perf_counter()
    for index, (image, label) in enumerate(_samples(root, images)):
        began = time.perf_counter()
        rng = np.random.default_rng([seed, positions[index]])
        rows = click_protocol(model, image, label, info.class_names, evaluation["clicks"]["n_clicks"], cfg, rng,
                              image_id=images[index], recorded=recorded.get(images[index]))
        _progress(what, index + 1, len(images), images[index], label.shape, rows, "clicks", began, start)
        frames.append(_tidy(rows, protocol="clicks", dataset=info.name, image=images[index], model=network, method=method,
                            agent=cfg.agent, acquisition="none", encoding=model.spec.encoding, seed=seed))
    table = pd.concat(frames, ignore_index=True)
    if train_dataset is not None:
        table.insert(2, "train_dataset", train_dataset)
    return table


def check_transferable(source: DatasetInfo, target: DatasetInfo) -> None:
    """A network can only be evaluated on a dataset with the same classes in the same order."""
    if source.class_names != target.class_names:
        raise DataError(
            f"transfer {source.name} → {target.name}: classes differ ({source.class_names} vs {target.class_names}); "
            "use the same label view on both (e.g. label_view: buildings for AIRS → Potsdam)"
        )


def evaluate_patches(root: Path, info: DatasetInfo, val_ids: list[str], model: Segmenter, confidnet: ConfidNet | None, method: str, acquisition: str, evaluation: dict, tiling: dict, seed: int, network: str, images: Sequence[str] | None = None) -> pd.DataFrame:
    """DIAL's patch protocol on the validation images for one (method, acquisition); ``images`` as in :func:`evaluate_clicks`."""
    what = f"patches {network}/{method}/{acquisition}"
    # the patch loop's own drop probability (DIAL 0.5) and lr decay
    cfg, images, positions = _evaluation_setup(root, info, val_ids, images, method, evaluation, tiling, what, "patches")
    patches = evaluation["patches"]
    recorded = recorded_clicks(root, info, val_ids, images, evaluation)
    frames = []
    start = time.perf_counter()
    for index, (image, label) in enumerate(_samples(root, images)):
        began = time.perf_counter()
        rng = np.random.default_rng([seed, positions[index]])
        rows = patch_protocol(model, image, label, info.class_names, patches["size"], acquisition, cfg, rng, confidnet,
                              patches["max_patches"], image_id=images[index], recorded=recorded.get(images[index]))
        _progress(what, index + 1, len(images), images[index], label.shape, rows, "patches", began, start)
        frames.append(_tidy(rows, protocol="patches", dataset=info.name, image=images[index], model=network, method=method,
                            agent=cfg.agent, acquisition=acquisition, encoding=model.spec.encoding, seed=seed))
    return pd.concat(frames, ignore_index=True)
