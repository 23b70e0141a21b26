"""One function per workflow step: builds the library's configs from params dictionaries and
runs the step on a canonical dataset folder. Scripts stay thin; tests call these directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dial_core.clicks.sampling import balancing_weights
from dial_core.data.canonical import DatasetInfo, class_shares, read_image, read_label
from dial_core.data.splits import nested_subset
from dial_core.errors import DataError
from dial_core.evaluation.protocols import InteractionConfig, click_protocol, patch_protocol
from dial_core.evaluation.validation import validation_scores
from dial_core.interactive.disca import DiscaConfig
from dial_core.models.confidnet import ConfidNet
from dial_core.models.segmenter import NetworkSpec, Segmenter
from dial_core.training.confidnet import ConfidNetConfig, train_confidnet
from dial_core.training.crops import ClickPolicy, raster_crop_source
from dial_core.training.pretrain import PretrainConfig, pretrain


def network_spec(network: dict, info: DatasetInfo) -> NetworkSpec:
    """The NetworkSpec of a resolved network definition (see :mod:`dial_core.studies`)."""
    return NetworkSpec(
        network["arch"], network["encoder"], info.n_classes, network["annotation"],
        network["encoding"], float(network["radius"]), network.get("encoder_weights"),
    )


def _samples(root: Path, ids: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for image_id in ids:
        yield read_image(root, image_id), read_label(root, image_id)


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
    )
    model, losses = pretrain(spec, raster_crop_source(root, train_ids), policy, cfg, device, state_path)
    scores = validation_scores(model, _samples(root, split["val"]), info.class_names, tiling["size"], tiling["overlap"])
    return model, {
        "val_miou": scores["miou"], "val_accuracy": scores["accuracy"], "val_iou": scores["iou"],
        "final_loss": losses[-1] if losses else None, "epochs": cfg.epochs, "train_images": len(train_ids),
        "train_class_shares": dict(zip(info.class_names, map(float, shares))), "network_definition": network,
    }


def train_confidnet_step(root: Path, info: DatasetInfo, split: dict, segmenter: Segmenter, params: dict, train: dict, seed: int, device: torch.device, threads: int) -> tuple[ConfidNet, dict]:
    """ConfidNet on the frozen segmenter, crops as in pretraining (clicks with its own probability)."""
    shares = class_shares(root, split["train"], info.n_classes, info.ignore_index)
    policy = ClickPolicy(params["click_probability"], train["max_clicks"], balancing_weights(shares, True),
                         segmenter.spec.click_encoder())
    cfg = ConfidNetConfig(params["epochs"], params["crops_per_epoch"], train["crop_size"], params["batch_size"], params["lr"], seed,
                          workers=threads if device.type == "cuda" else 0)
    head, losses = train_confidnet(segmenter, raster_crop_source(root, split["train"]), policy, cfg, device)
    return head, {"final_mse": losses[-1], "epochs": cfg.epochs}


def interaction_config(method: str, evaluation: dict, tiling: dict) -> InteractionConfig:
    d = evaluation["disca"]
    return InteractionConfig(
        method=method, agent=evaluation["agent"],
        disca=DiscaConfig(d["lr"], d["steps"], d["regularisation"], d["ac_drop_probability"]),
        window=tiling["size"], overlap=tiling["overlap"], disca_window=d["window"],
    )


def _tidy(rows: list[dict], **keys) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for i, (name, value) in enumerate(keys.items()):
        frame.insert(i, name, value)
    return frame


def evaluate_clicks(root: Path, info: DatasetInfo, val_ids: list[str], model: Segmenter, method: str, evaluation: dict, tiling: dict, seed: int, network: str, train_dataset: str | None = None) -> pd.DataFrame:
    """The DISIR / DISCA click protocol on every validation image, as one tidy table.

    ``train_dataset`` names the dataset the network was trained on when it differs from ``info``
    (domain adaptation); the table then carries it as a column.
    """
    cfg = interaction_config(method, evaluation, tiling)
    frames = []
    for index, (image, label) in enumerate(_samples(root, val_ids)):
        rng = np.random.default_rng([seed, index])
        rows = click_protocol(model, image, label, info.class_names, evaluation["clicks"]["n_clicks"], cfg, rng)
        frames.append(_tidy(rows, protocol="clicks", dataset=info.name, image=val_ids[index], model=network, method=method,
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


def evaluate_patches(root: Path, info: DatasetInfo, val_ids: list[str], model: Segmenter, confidnet: ConfidNet | None, method: str, acquisition: str, evaluation: dict, tiling: dict, seed: int, network: str) -> pd.DataFrame:
    """DIAL's patch protocol on every validation image for one (method, acquisition)."""
    cfg = interaction_config(method, evaluation, tiling)
    patches = evaluation["patches"]
    frames = []
    for index, (image, label) in enumerate(_samples(root, val_ids)):
        rng = np.random.default_rng([seed, index])
        rows = patch_protocol(model, image, label, info.class_names, patches["size"], acquisition, cfg, rng, confidnet, patches["max_patches"])
        frames.append(_tidy(rows, protocol="patches", dataset=info.name, image=val_ids[index], model=network, method=method,
                            agent=cfg.agent, acquisition=acquisition, encoding=model.spec.encoding, seed=seed))
    return pd.concat(frames, ignore_index=True)
