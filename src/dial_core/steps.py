"""One function per workflow step: builds the library's configs from params dictionaries and
runs the step on a canonical dataset folder. Scripts stay thin; tests call these directly."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dial_core.active.acquisition import AcquisitionConfig
from dial_core.clicks.agents import needs_recorded
from dial_core.clicks.click_log import check_click_folder, click_log_folder, read_click_log
from dial_core.clicks.sampling import balancing_weights
from dial_core.clicks.types import Click
from dial_core.data.canonical import DatasetInfo, class_shares, raster_georef, raster_shape, read_image, read_label
from dial_core.data.splits import nested_subset
from dial_core.data.tiling import fit_tiling, fit_window, tile_windows
from dial_core.errors import ConfigError, DataError
from dial_core.evaluation.alcd_protocol import alcd_click_protocol
from dial_core.evaluation.metrics import confusion_matrix, iou_per_class
from dial_core.evaluation.crops import crop_protocol, crop_shape, sample_crops
from dial_core.evaluation.protocols import InteractionConfig, click_protocol, patch_protocol
from dial_core.evaluation.validation import validation_scores
from dial_core.interactive.alcd import AlcdConfig, fit_forest, pixel_features, predict_proba_map, sample_training_pixels
from dial_core.interactive.disca import DiscaConfig
from dial_core.interactive.festa import FestaConfig
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
    festa = FestaConfig(**d["festa"]) if d.get("festa") else None  # evaluation.arms.festa.festa (read by the festa arm only)
    return DiscaConfig(float(d["lr"]), d["steps"], d["regularisation"], float(drop), d.get("p0", "initial"), decay, festa=festa)


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


def _network_method(method: str, what: str):
    """The registry entry of ``method``, which must run on a network (not ALCD's forest)."""
    arm = interactive_method(method)
    if arm.family != "network":
        raise ConfigError(f"{what}: {method} is a {arm.family} method ({arm.description}), not a network method: it has no "
                          "network, learning rate or interaction config; evaluate it with dial_core.steps.evaluate_clicks_alcd")
    return arm


def interaction_config(method: str, evaluation: dict, tiling: dict, protocol: str = "clicks") -> InteractionConfig:
    """The protocols' config for ``method``: an adapting method's settings are ``evaluation.disca``
    with its ``evaluation.arms`` overrides, minus the parts the method switches off (λ, channels)."""
    arm = _network_method(method, "interaction_config")
    d = adaptation_settings(evaluation, method)
    return InteractionConfig(
        method=method, agent=evaluation["agent"], agent_options=dict(evaluation.get("agent_options") or {}),
        disca=arm.adaptation(disca_config(d, protocol, method)) if arm.adapts else DiscaConfig(0.0, 0, 0.0, 0.0),
        window=tiling["size"], overlap=tiling["overlap"], disca_window=d["window"],
        acquisition=AcquisitionConfig.from_params(evaluation.get("acquisition")),
    )


def calibrate_disca(root: Path, info: DatasetInfo, split: dict, model: Segmenter, evaluation: dict, tiling: dict, seed: int,
                    network: str, trained_on: str | None = None, method: str = "disca") -> dict:
    """DISCA's lr for one network clicked on ``info``'s dataset: the grid value with the best mean
    final-mIoU gain of the click protocol (``calibration.clicks`` clicks) on the split's
    ``calibration`` images.

    Those are training images held out of every network's training (``split.calibration_images``),
    so the network meets them new, as it meets the evaluation images; validation images are never
    read. The lr does not transfer across domains (an lr that helps under shift hurts in-domain), so
    a transfer target (``trained_on`` another dataset) is calibrated on its own images: its
    calibration images topped up to ``calibration.transfer_images`` with its training images, which
    the network trained on the source has never seen either (two images picked the lr by chance:
    README, "DISCA under shift").
    ``method``: DISCA or any adapting ablation arm (each gets its own lr).
    """
    if not _network_method(method, "calibrate_disca").adapts:
        raise ConfigError(f"calibrate_disca: {method} does not adapt the weights; it has no learning rate to calibrate")
    settings = evaluation["disca"]["calibration"]
    ids = list(split.get("calibration") or [])
    if trained_on not in (None, info.name):  # the network never saw this dataset: its training images are new to it too
        ids += [i for i in split.get("train", []) if i not in ids][: max(0, int(settings.get("transfer_images") or 0) - len(ids))]
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
    Clicks in map coordinates are mapped with each image's transform, classes given by index or by
    name (dataset.json's class names); a file for an image that is
    not a validation image, a missing file, a click outside its image or an unknown class stops
    with a DataError naming the file and the click."""
    if not needs_recorded(evaluation["agent"], evaluation.get("agent_options")):
        return {}
    files = check_click_folder(click_log_folder(evaluation.get("agent_options"), info.name), val_ids, images)
    return {i: read_click_log(files[i], raster_shape(root, i), info.n_classes, *raster_georef(root, i), info.class_names)
            for i in images}


def _tidy(rows: list[dict], **keys) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for i, (name, value) in enumerate(keys.items()):
        frame.insert(i, name, value)
    return frame


def _evaluation_images(info: DatasetInfo, val_ids: Sequence[str], images: Sequence[str] | None, what: str) -> tuple[list[str], list[int]]:
    """The images to evaluate (default all of ``val_ids``) and their positions in ``val_ids``, which
    seed their generators: an image's rows do not depend on which subset was selected."""
    images = list(val_ids) if images is None else list(images)
    index = {image_id: i for i, image_id in enumerate(val_ids)}
    unknown = [i for i in images if i not in index]
    if unknown:
        raise DataError(f"{what}: images {', '.join(unknown[:5])} are not validation images of {info.name}; "
                        "re-run the evaluation_images rule after a new split")
    return images, [index[i] for i in images]


def _evaluation_setup(root: Path, info: DatasetInfo, val_ids: Sequence[str], images: Sequence[str] | None,
                      method: str, evaluation: dict, tiling: dict, what: str, protocol: str = "clicks") -> tuple[InteractionConfig, list[str], list[int]]:
    """The interaction config with the inference window fitted to every validation image, the
    images to evaluate and their positions in ``val_ids`` (which seed their generators): neither
    the window nor an image's rows depend on which subset ``evaluation.max_images`` selected."""
    images, positions = _evaluation_images(info, val_ids, images, what)
    window, overlap = inference_tiling(root, val_ids, tiling)
    log.info("%s on %s: %d of %d validation images, inference window %d px, overlap %d px",
             what, info.name, len(images), len(val_ids), window, overlap)
    cfg = interaction_config(method, evaluation, {**tiling, "size": window, "overlap": overlap}, protocol)
    return cfg, images, positions


def _progress(what: str, done: int, total: int, image_id: str, shape: tuple[int, ...], rows: list[dict], unit: str, began: float, start: float) -> None:
    """One log line per evaluated image: long evaluations show where they are in the rule's log."""
    placed = sum(r["click_row"] >= 0 for r in rows[1:])  # the simulated user may find nothing to click
    log.info("%s: image %d/%d %s (%d×%d): %d %s done, %d clicks placed, mIoU %.3f → %.3f, %.1f s (%.1f s elapsed)",
             what, done, total, image_id, shape[0], shape[1], len(rows) - 1, unit, placed,
             rows[0]["miou"], rows[-1]["miou"], time.perf_counter() - began, time.perf_counter() - start)


def evaluate_clicks(root: Path, info: DatasetInfo, val_ids: list[str], model: Segmenter, method: str, evaluation: dict, tiling: dict, seed: int, network: str, train_dataset: str | None = None, images: Sequence[str] | None = None,
                    sequential: bool = False, n_clicks: int | None = None) -> pd.DataFrame:
    """The DISIR / DISCA click protocol on the validation images, as one tidy table.

    ``images`` is the evaluated subset of ``val_ids`` (``evaluation.max_images``; default all).
    ``train_dataset`` names the dataset the network was trained on when it differs from ``info``
    (domain adaptation); the table then carries it as a column.
    ``sequential``: DIAL's sequential learning (Fig. 8): an adapting method keeps its weights from
    one image to the next, in the order of ``images`` (recorded in a ``position`` column), instead of
    starting from the pretrained weights on each image; ``model`` itself is left untouched.
    ``n_clicks``: the budget (default ``evaluation.clicks.n_clicks``).
    """
    what = f"clicks {network}/{method}" + (" sequential" if sequential else "")
    cfg, images, positions = _evaluation_setup(root, info, val_ids, images, method, evaluation, tiling, what)
    if sequential and not interactive_method(method).adapts:
        raise ConfigError(f"sequential learning: {method} does not adapt the weights, so it has none to keep across images; "
                          "name an adapting method (e.g. disca) in analyses.sequential")
    recorded = recorded_clicks(root, info, val_ids, images, evaluation)
    n_clicks = evaluation["clicks"]["n_clicks"] if n_clicks is None else n_clicks
    carried = copy.deepcopy(model) if sequential else model  # adapted image after image
    frames = []
    start = time.perf_counter()
    for index, (image, label) in enumerate(_samples(root, images)):
        began = time.perf_counter()
        rng = np.random.default_rng([seed, positions[index]])
        rows = click_protocol(carried, image, label, info.class_names, n_clicks, cfg, rng,
                              image_id=images[index], recorded=recorded.get(images[index]), keep_weights=sequential)
        _progress(what, index + 1, len(images), images[index], label.shape, rows, "clicks", began, start)
        frame = _tidy(rows, protocol="clicks", dataset=info.name, image=images[index], model=network, method=method,
                      agent=cfg.agent, acquisition="none", encoding=model.spec.encoding, seed=seed)
        if sequential:
            frame.insert(3, "position", index)
            frame.insert(4, "weights", "sequential")
        frames.append(frame)
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


def evaluate_crops(root: Path, info: DatasetInfo, val_ids: Sequence[str], model: Segmenter, methods: Sequence[str], agent: str,
                   crops: dict, evaluation: dict, tiling: dict, seed: int, network: str,
                   images: Sequence[str] | None = None) -> pd.DataFrame:
    """DIAL's one-annotation-per-crop protocol (Fig. 9, App. B) for one simulated user, as one tidy table.

    ``crops``: ``evaluation.crops`` ({n_crops, size}); the crops are drawn from ``images`` (the
    evaluated validation images, default all of ``val_ids``) with ``seed`` alone, so every user and
    every method sees the same crops, and each crop's generator is seeded by (seed, crop index).
    An adapting method's lr must be a number already (:func:`with_disca_lr`). Each image is read
    once; ``model`` ends with the weights it started with (adapting methods restore a state copy).
    """

    what = f"crops {network}/{agent}"
    if needs_recorded(agent, evaluation.get("agent_options")):
        raise ConfigError(f"evaluation.crops.agents: {agent!r} replays a person's clicks on whole images; crops have none. "
                          "Name simulated users (e.g. largest_mistake_centre)")
    images = list(val_ids) if images is None else list(images)
    known = set(val_ids)
    unknown = [i for i in images if i not in known]
    if unknown:
        raise DataError(f"{what}: images {', '.join(unknown[:5])} are not validation images of {info.name}; "
                        "re-run the evaluation_images rule after a new split")
    configs = {m: interaction_config(m, {**evaluation, "agent": agent}, tiling) for m in methods}
    shapes = {i: raster_shape(root, i) for i in images}
    size = int(crops["size"])
    plan = sample_crops(shapes, int(crops["n_crops"]), size, np.random.default_rng([seed, 0]))
    by_image: dict[str, list[int]] = {}
    for index, (image_id, _, _) in enumerate(plan):
        by_image.setdefault(image_id, []).append(index)
    log.info("%s on %s: %d crops of %d px from %d images, methods %s", what, info.name, len(plan), size,
             len(by_image), ", ".join(methods))
    pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rows: list[dict] = []
    every, done, start = max(1, len(plan) // 10), 0, time.perf_counter()
    for image_id in (i for i in images if i in by_image):
        image, label = read_image(root, image_id), read_label(root, image_id)
        for index in by_image[image_id]:
            _, r, c = plan[index]
            h, w = crop_shape(label.shape, size)
            out = crop_protocol(model, image[r : r + h, c : c + w], label[r : r + h, c : c + w], info.class_names, agent,
                                configs, np.random.default_rng([seed, 1, index]), pretrained=pretrained,
                                image_id=image_id, ignore_index=info.ignore_index)
            keys = {"protocol": "crops", "dataset": info.name, "image": image_id, "crop": index, "row_off": r,
                    "col_off": c, "model": network, "agent": agent, "seed": seed}
            rows.extend({**keys, **row} for row in out)
            done += 1
            if done % every == 0 or done == len(plan):
                log.info("%s: %d/%d crops, %.1f s elapsed", what, done, len(plan), time.perf_counter() - start)
    frame = pd.DataFrame(rows)  # crops were run image by image: back to crop order (methods stay in order)
    return frame.sort_values("crop", kind="stable").reset_index(drop=True) if rows else frame


# ------------------------------------------------------------------------------------------------
# ALCD (DIAL Fig. 5's random-forest baseline): no network, its own pre-training and click protocol
# ------------------------------------------------------------------------------------------------


def alcd_config(params: dict, seed: int, threads: int = 1) -> AlcdConfig:
    """AlcdConfig of the ``alcd`` params section; the forest is seeded with the run's ``seed``;
    ``threads`` (a runtime choice) fits and evaluates the trees in parallel, same results."""
    try:
        return AlcdConfig(params["samples_per_image"], params["n_estimators"], params["max_depth"], params["min_samples_leaf"],
                          tuple(params["scales"]), seed=int(seed), n_jobs=threads)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"alcd: {type(exc).__name__} {exc}: the section needs samples_per_image, n_estimators, max_depth, "
                          "min_samples_leaf and scales (see params.yaml)") from exc


def pretrain_alcd(root: Path, info: DatasetInfo, split: dict, params: dict, seed: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    """ALCD's pre-training: ``alcd.samples_per_image`` labelled pixels drawn from each image of
    ``split['train']`` (never a calibration or validation image), and the forest fitted on them
    scored without clicks on ``split['val']`` (confusion summed over the images, as
    :func:`pretrain_network`'s ``val_miou``). Returns the samples (X, y) and the metrics; the forest
    itself is refit from the samples where it is needed (deterministic for the seed)."""
    cfg = alcd_config(params, seed, threads)
    start = time.perf_counter()
    train_ids = list(split["train"])
    rng = np.random.default_rng([seed, 10])  # the pixel draw's own stream
    X, y = sample_training_pixels(_samples(root, train_ids), cfg.samples_per_image, rng, cfg.scales, info.ignore_index)
    forest = fit_forest(X, y, cfg)
    fitted = time.perf_counter() - start
    n = info.n_classes
    total = np.zeros((n, n), np.int64)
    for image, label in _samples(root, list(split["val"])):
        prediction = predict_proba_map(forest, pixel_features(image, cfg.scales), n).argmax(0)
        total += confusion_matrix(label, prediction, n, info.ignore_index)
    iou = iou_per_class(total)
    scored = bool(total.sum())
    log.info("ALCD on %s: %d samples from %d training images, %d features, fitted in %.1f s, validation mIoU %s",
             info.name, len(y), len(train_ids), X.shape[1], fitted, f"{np.nanmean(iou):.3f}" if scored else "n/a")
    return X, y, {
        "val_miou": float(np.nanmean(iou)) if scored else None,
        "val_accuracy": float(np.trace(total) / total.sum()) if scored else None,
        "val_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(info.class_names, iou)},
        "train_images": len(train_ids), "val_images": len(split["val"]), "samples": len(y),
        "samples_per_image": cfg.samples_per_image, "scales": list(cfg.scales), "n_features": cfg.n_features,
        "n_estimators": cfg.n_estimators, "max_depth": cfg.max_depth, "min_samples_leaf": cfg.min_samples_leaf,
        "train_class_shares": dict(zip(info.class_names, map(float, np.bincount(y, minlength=n)[:n] / max(len(y), 1)))),
        "fit_seconds": fitted, "seconds": time.perf_counter() - start,
    }


def evaluate_clicks_alcd(root: Path, info: DatasetInfo, val_ids: list[str], X: np.ndarray, y: np.ndarray, params: dict, evaluation: dict,
                         seed: int, network: str, train_dataset: str | None = None, images: Sequence[str] | None = None,
                         threads: int = 1) -> pd.DataFrame:
    """ALCD's click protocol on the validation images, as one table with :func:`evaluate_clicks`'s
    columns (method ``alcd``, encoding ``none``; ``network`` names the ``model`` column).

    The same simulated user (``evaluation.agent``), budget and per-image seeds as the networks' click
    tables, so the user's own draws match image for image. The pre-trained forest is fitted once from
    (X, y) and refit on X + the clicks after every click (:func:`alcd_click_protocol`).
    """
    what = f"clicks {network}/alcd"
    cfg = alcd_config(params, seed, threads)
    if X.shape[1] != cfg.n_features:
        raise ConfigError(f"{what}: the ALCD samples have {X.shape[1]} features per pixel but alcd.scales {list(cfg.scales)} "
                          f"give {cfg.n_features}; re-run pretrain_alcd with the current params")
    images, positions = _evaluation_images(info, val_ids, images, what)
    recorded = recorded_clicks(root, info, val_ids, images, evaluation)
    options = dict(evaluation.get("agent_options") or {})
    forest = fit_forest(X, y, cfg)
    frames = []
    start = time.perf_counter()
    for index, (image, label) in enumerate(_samples(root, images)):
        began = time.perf_counter()
        rng = np.random.default_rng([seed, positions[index]])
        rows = alcd_click_protocol(X, y, cfg, image, label, info.class_names, evaluation["clicks"]["n_clicks"], evaluation["agent"],
                                   options, rng, image_id=images[index], recorded=recorded.get(images[index]), forest=forest)
        _progress(what, index + 1, len(images), images[index], label.shape, rows, "clicks", began, start)
        frames.append(_tidy(rows, protocol="clicks", dataset=info.name, image=images[index], model=network, method="alcd",
                            agent=evaluation["agent"], acquisition="none", encoding="none", seed=seed))
    table = pd.concat(frames, ignore_index=True)
    if train_dataset is not None:
        table.insert(2, "train_dataset", train_dataset)
    return table


# --- Area Disagreement's pool-based active learning ------------------------------------------------

def pool_samples(root: Path, image_ids: Sequence[str], tile: int | None) -> dict[str, tuple[str, tuple[int, int, int, int]]]:
    """The pool's samples: whole images (``tile`` None, AD's Cityscapes frames), or the ``tile``²
    windows of each image (non-overlapping, the last flush with the border), named ``<id>@<row>_<col>``
    (remote-sensing scenes of 6000² px are not one sample each)."""
    samples = {}
    for image_id in image_ids:
        shape = raster_shape(root, image_id)
        windows = [(0, 0, *shape)] if tile is None else tile_windows(*shape, min(tile, max(shape)), 0)
        for r, c, h, w in windows:
            samples[image_id if tile is None else f"{image_id}@{r}_{c}"] = (image_id, (r, c, h, w))
    return samples


def _window_source(root: Path, samples: Sequence[tuple[str, tuple[int, int, int, int]]]):
    """A training CropSource over pool samples (image windows), read window by window."""
    from rasterio.windows import Window

    from dial_core.training.crops import CropSource

    def read(i: int, r: int, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        image_id, (r0, c0, _, _) = samples[i]
        window = Window(c0 + c, r0 + r, w, h)
        return read_image(root, image_id, window), read_label(root, image_id, window)

    return CropSource([(h, w) for _, (_, _, h, w) in samples], read)


def _read_sample(root: Path, sample: tuple[str, tuple[int, int, int, int]], label: bool = False) -> np.ndarray:
    from rasterio.windows import Window

    image_id, (r, c, h, w) = sample
    return (read_label if label else read_image)(root, image_id, Window(c, r, w, h))


def _pool_setup(root: Path, info: DatasetInfo, split: dict, params: dict, tiling: dict, seed: int):
    """The loop's settings, pool samples (of the training + calibration images) and test set (the validation images)."""
    from dial_core.active.acquisition import AcquisitionConfig
    from dial_core.active.pool import PoolConfig
    from dial_core.training.pool_training import PoolTrainConfig

    samples = pool_samples(root, list(split["train"]) + list(split.get("calibration", [])), params.get("tile"))
    test = list(split["val"])
    cfg = PoolConfig(params["initial_fraction"], params["validation_fraction"], params["batch_size"], params["stop_fraction"], seed)
    train_cfg = PoolTrainConfig(**params["training"])
    spec = NetworkSpec(n_classes=len(info.class_names), annotation="single", **params["network"])  # one zero channel
    acq = AcquisitionConfig.from_params({"mc_dropout": params.get("mc_dropout"), "odin": params.get("odin"),
                                         "area_disagreement": params.get("area_disagreement")})
    window, overlap = inference_tiling(root, test, tiling)
    return samples, test, cfg, train_cfg, spec, acq, window, overlap


def run_pool_strategy(root: Path, info: DatasetInfo, split: dict, strategy: str, seed: int, params: dict, tiling: dict,
                      device: torch.device, previous: Sequence[dict] = (), on_iteration=None) -> pd.DataFrame:
    """Area Disagreement's loop for one strategy and seed (AD §IV): the pool = the split's training
    images, the test set = its validation images; each iteration trains ``params.network`` from
    scratch, tests it, scores the unlabelled images by the mean of the strategy's pixel map and adds
    the top ``batch_size``. ``previous``: finished rows of the same run (resume)."""
    import zlib

    from dial_core.active.diversity import batch_diversity
    from dial_core.active.pool import ids_to_cell, run_pool_loop
    from dial_core.active.uncertainty import predict_with_uncertainty
    from dial_core.training.pool_training import train_pool_model

    from dial_core.active.pool import pool_strategies

    pool_strategies({"strategies": [strategy]})
    samples, test, cfg, train_cfg, spec, acq, window, overlap = _pool_setup(root, info, split, params, tiling, seed)

    def train(train_ids, val_ids, iteration_seed):
        model, history = train_pool_model(spec, _window_source(root, [samples[i] for i in train_ids]),
                                          _window_source(root, [samples[i] for i in val_ids]), train_cfg, iteration_seed, device)
        log.info("trained on %d images (val %d): best epoch %d, stopped at %d", len(train_ids), len(val_ids),
                 history.best_epoch, history.stopped_epoch)
        return model.eval()

    def evaluate(model, ids):
        return validation_scores(model, _samples(root, ids), info.class_names, window, overlap)

    def score(model, ids):
        return {i: float(predict_with_uncertainty(model, _read_sample(root, samples[i]), None, strategy, window, overlap, acq,
                                                  seed=zlib.crc32(f"{seed}:{i}".encode()))[1].mean()) for i in ids}

    def describe(ids):
        return batch_diversity(_read_sample(root, samples[i], label=True) for i in ids)

    def tidy(row: dict) -> dict:
        return {"dataset": info.name, "strategy": strategy, "model": spec.arch,
                **{k: ids_to_cell(v) if isinstance(v, list) else v for k, v in row.items()}}

    def saved(row, model):
        if on_iteration is not None:
            on_iteration(tidy(row))

    rows = run_pool_loop(list(samples), test, cfg, None if strategy == "random" else score, train, evaluate,
                         max_iterations=params.get("max_iterations"), previous=previous, on_iteration=saved,
                         describe_selection=describe)
    return pd.DataFrame([tidy(r) for r in rows])


def train_full_pool(root: Path, info: DatasetInfo, split: dict, seed: int, params: dict, tiling: dict, device: torch.device) -> dict:
    """The 100 % reference of AD Table I: the same network and training on the whole pool (20 % of
    it held out for early stopping, as every iteration does), tested on the same images."""
    from dial_core.active.pool import derived_rng, split_labelled
    from dial_core.training.pool_training import train_pool_model

    samples, test, cfg, train_cfg, spec, _, window, overlap = _pool_setup(root, info, split, params, tiling, seed)
    train_ids, val_ids = split_labelled(list(samples), cfg, derived_rng(seed, 0, "full"))
    model, history = train_pool_model(spec, _window_source(root, [samples[i] for i in train_ids]),
                                      _window_source(root, [samples[i] for i in val_ids]), train_cfg, seed, device)
    scores = validation_scores(model.eval(), _samples(root, test), info.class_names, window, overlap)
    return {"dataset": info.name, "model": spec.arch, "seed": seed, "pool_size": len(samples), "n_train": len(train_ids),
            "n_val": len(val_ids), **scores, "history": history.to_dict()}


def pool_progress(path: Path, fingerprint: dict) -> list[dict]:
    """The finished iterations a killed pool job left in ``path`` (a CSV beside ``path``.json holding
    the settings it ran with); none when those settings differ or the file cannot be read."""
    meta = path.with_suffix(".json")
    if not path.exists() or not meta.exists():
        return []
    try:
        same = json.loads(meta.read_text()) == json.loads(json.dumps(fingerprint))
        rows = pd.read_csv(path, keep_default_na=False, dtype={"added": str, "selected": str}).to_dict(orient="records") if same else []
    except (ValueError, OSError) as err:
        log.info("pool progress %s unreadable (%s): starting over", path, err)
        return []
    if not same:
        log.info("pool progress %s was made with other settings: starting over", path)
    return rows


def save_pool_progress(path: Path, fingerprint: dict, rows: Sequence[dict]) -> None:
    from dial_core.atomic import write_csv, write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path.with_suffix(".json"), fingerprint)
    write_csv(path, pd.DataFrame(list(rows)))
