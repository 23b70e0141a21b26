"""AC pretraining with DISIR's recipe: SGD, step schedule, crops with sampled clicks, resume.

Resume is safe: the resumable state records what defines the run (:func:`training_fingerprint`),
and a state made with other settings, from another network or that cannot be read is not
continued; training starts from scratch and says why in one log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dial_core.errors import CheckpointError, TrainingError
from dial_core.models.checkpoint import load_checkpoint, save_checkpoint
from dial_core.models.segmenter import NetworkSpec, Segmenter, spec_to_dict
from dial_core.training.crops import ClickCropDataset, ClickPolicy, CropSource, annotate_with_prediction

log = logging.getLogger(__name__)

# A batch loss this many times the first epoch's mean loss has diverged (params: pretrain.divergence_factor;
# ConfidNet uses this default).
DIVERGENCE_FACTOR = 1000.0


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int
    crops_per_epoch: int
    crop_size: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    gamma: float
    checkpoint_every: int
    seed: int
    workers: int = 0
    mixed_precision: bool = False
    divergence_factor: float = DIVERGENCE_FACTOR


# Fields that never change the weights of a run's epochs: not in the fingerprint. ``epochs`` is
# checked apart (a run may be extended, or shortened down to its checkpoint, without changing the
# epochs already trained, since every epoch draws from its own seed).
_NOT_FINGERPRINTED = frozenset({"epochs", "checkpoint_every", "workers", "divergence_factor"})


def make_optimiser(model: nn.Module, cfg: PretrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    return opt, sched


# --------------------------------------------------------------------------------------------
# divergence
# --------------------------------------------------------------------------------------------


@dataclass
class DivergenceGuard:
    """Stops training whose loss is NaN/inf, or finite but exploded.

    A batch loss above ``factor`` × the first epoch's mean loss has diverged; during the first
    epoch, whose mean is not known yet, the first batch's loss is the reference. ``reference`` is
    part of the resumable state, so a resumed run keeps the reference of its first epoch.
    """

    factor: float
    name: str  # what the messages call the loss
    fix: str  # what the user should do
    note: str = ""  # appended to every message
    reference: float | None = None  # mean loss of the first epoch
    first_batch: float | None = None

    def check(self, loss: float, epoch: int) -> None:
        if not math.isfinite(loss):
            raise TrainingError(f"{self.name} became {loss} at epoch {epoch + 1}; {self.fix}{self.note}")
        if self.reference is not None:
            reference, what = self.reference, "the mean loss of the first epoch"
        elif self.first_batch is not None:
            reference, what = self.first_batch, "the loss of the first batch"
        else:
            self.first_batch = loss
            return
        if reference > 0 and loss > self.factor * reference:
            raise TrainingError(
                f"{self.name} exploded to {loss:.4g} at epoch {epoch + 1}, more than {self.factor:g} × {what} "
                f"({reference:.4g}); {self.fix}{self.note}"
            )

    def end_epoch(self, mean_loss: float) -> None:
        if self.reference is None and math.isfinite(mean_loss) and mean_loss > 0:
            self.reference = mean_loss


# --------------------------------------------------------------------------------------------
# what defines a run, and whether a saved state may be continued
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-like (lists, dicts, str, int, float, bool, None): storable with ``weights_only`` loads."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _describe_encoder(encoder: Any) -> str:
    """The click encoder's parameters as a stable string (a dataclass repr has no address in it)."""
    if is_dataclass(encoder):
        params = ", ".join(f"{f.name}={_plain(getattr(encoder, f.name))!r}" for f in fields(encoder))
    else:
        params = ", ".join(f"{k}={_plain(v)!r}" for k, v in sorted(vars(encoder).items()))
    return f"{type(encoder).__name__}({params})"


def data_identity(dataset: str, image_ids: Sequence[str], checksums: Mapping[str, str]) -> dict[str, Any]:
    """What defines the training data of a canonical dataset: its name, the training image ids
    and a digest of the dataset's recorded checksums (a regenerated dataset differs)."""
    digest = hashlib.sha256(json.dumps(dict(checksums), sort_keys=True).encode()).hexdigest()[:16]
    return {"dataset": dataset, "images": list(image_ids), "checksums": digest}


def training_fingerprint(
    spec: NetworkSpec, policy: ClickPolicy, cfg: PretrainConfig, source: CropSource, data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything that changes the weights a run produces, as flat JSON-like values: the config
    (but ``epochs``, checked apart, and settings without effect on the weights), the seed, the click
    policy, the network spec, the crop source's image shapes and ``data`` (e.g. :func:`data_identity`)."""
    fingerprint = {k: _plain(v) for k, v in asdict(cfg).items() if k not in _NOT_FINGERPRINTED}
    fingerprint.update({
        "click_probability": float(policy.click_probability),
        "max_clicks": int(policy.max_clicks),
        "click_position": policy.position,
        "class_weights": [float(f"{w:.6g}") for w in np.asarray(policy.class_weights, dtype=float).ravel()],
        "click_encoder": _describe_encoder(policy.encoder),
    })
    fingerprint.update({f"network.{k}": _plain(v) for k, v in spec_to_dict(spec).items()})
    fingerprint["data.image_shapes"] = [[int(h), int(w)] for h, w in source.shapes]
    fingerprint.update({f"data.{k}": _plain(v) for k, v in (data or {}).items()})
    return fingerprint


class _Text(str):
    """A value already written for the log (shown without quotes)."""


_MISSING = _Text("(not recorded)")


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, _Text) else repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…" + (f" ({len(value)} items)" if isinstance(value, list) else "")
    return text


def settings_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``key: (old, new)`` for every fingerprint entry that differs (missing on one side included)."""
    keys = list(new) + [k for k in old if k not in new]
    return {k: (old.get(k, _MISSING), new.get(k, _MISSING)) for k in keys if old.get(k, _MISSING) != new.get(k, _MISSING)}


def _continuable_state(state_path: Path | None, fingerprint: dict[str, Any], epochs: int) -> dict | None:
    """The saved state when training may continue from it; otherwise log why not and return None.

    A stale state is left in place: the new run's first checkpoint replaces it.
    """
    if state_path is None or not state_path.exists():
        return None
    scratch = "training from scratch (its first checkpoint replaces the stale state)"
    try:
        state = load_checkpoint(state_path)
    except CheckpointError as err:
        log.warning("%s; %s", str(err).split("; delete")[0], scratch)  # "checkpoint <path> cannot be read (why)"
        return None
    recorded = state.get("fingerprint") if isinstance(state, dict) else None
    if not isinstance(recorded, dict):
        log.warning("training state %s records no training settings (an older format); %s", state_path, scratch)
        return None
    differences = settings_differences(recorded, fingerprint)
    reached = state.get("epoch")
    if isinstance(reached, int) and reached > epochs:
        differences["epochs"] = (_Text(f"{reached} (reached)"), epochs)
    if differences:
        listed = "; ".join(f"{k}: {_short(a)} → {_short(b)}" for k, (a, b) in differences.items())
        log.warning("training state %s was made with other settings (%s); %s", state_path, listed, scratch)
        return None
    return state


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labelled pixels (a module function, so tests can wrap it)."""
    return nn.functional.cross_entropy(logits, target, ignore_index=255)


def train_epoch(
    model: nn.Module, loader: DataLoader, opt, device: torch.device, scaler, epoch: int, policy: ClickPolicy, seed: int,
    guard: DivergenceGuard | None = None,
) -> float:
    model.train()
    if guard is None:
        guard = DivergenceGuard(DIVERGENCE_FACTOR, "loss", "lower pretrain.lr or check the labels")
    total, count = 0.0, 0
    for x, y, indices in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, mininterval=5):
        if bool((y == 255).all()):
            continue  # nothing labelled in these crops (large ignore areas): no gradient to take
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if policy.needs_prediction:
            x = annotate_with_prediction(model, x, y, indices, policy, seed, epoch)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = segmentation_loss(model(x), y)
        value = float(loss.detach())
        guard.check(value, epoch)  # before the step: a diverged batch changes no weight
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        total += value * len(x)
        count += len(x)
    return total / max(count, 1)


def _fresh(spec: NetworkSpec, cfg: PretrainConfig, device: torch.device):
    torch.manual_seed(cfg.seed)
    model = Segmenter(spec).to(device)
    return (model, *make_optimiser(model, cfg))


def pretrain(
    spec: NetworkSpec,
    source: CropSource,
    policy: ClickPolicy,
    cfg: PretrainConfig,
    device: torch.device,
    state_path: Path | None = None,
    stop_after_epoch: Callable[[int], bool] | None = None,
    data: Mapping[str, Any] | None = None,
) -> tuple[Segmenter, list[float]]:
    """Train from scratch or resume from ``state_path``; returns the model and per-epoch losses.

    ``data`` says what defines the training data beyond the crop source's shapes (e.g. image ids,
    :func:`data_identity`); it is part of the fingerprint that decides whether a state is resumed.
    A NaN or exploded loss raises :class:`TrainingError` before the epoch's checkpoint.
    ``stop_after_epoch`` lets tests simulate an interruption right after a checkpoint.
    """
    fingerprint = training_fingerprint(spec, policy, cfg, source, data)
    model, opt, sched = _fresh(spec, cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.mixed_precision and device.type == "cuda")
    guard = DivergenceGuard(
        cfg.divergence_factor, "loss", "lower pretrain.lr or check the labels",
        note=" (no checkpoint was written for this epoch)",
    )
    start = 0
    state = _continuable_state(state_path, fingerprint, cfg.epochs)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, reference = int(state["epoch"]), state["reference_loss"]
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            why = " ".join(str(err).split())[:200]  # one line: load_state_dict lists keys over many
            log.warning("training state %s cannot be restored (%s: %s); training from scratch",
                        state_path, type(err).__name__, why)
            model, opt, sched = _fresh(spec, cfg, device)  # a partial load may have changed some weights
        else:
            guard.reference = None if reference is None else float(reference)
            log.info("resuming from %s at epoch %d", state_path, start)
    losses: list[float] = []
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # per-epoch: resume gives identical draws
        crops = ClickCropDataset(source, cfg.crop_size, cfg.crops_per_epoch, policy, cfg.seed, epoch)
        loader = DataLoader(
            crops, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
            pin_memory=device.type == "cuda", drop_last=len(crops) > cfg.batch_size,
        )
        loss = train_epoch(model, loader, opt, device, scaler, epoch, policy, cfg.seed, guard)
        if not math.isfinite(loss):
            raise TrainingError(f"mean loss of epoch {epoch + 1} is {loss}; lower pretrain.lr")
        guard.end_epoch(loss)
        sched.step()
        losses.append(loss)
        log.info("epoch %d/%d loss %.4f lr %.2e", epoch + 1, cfg.epochs, loss, opt.param_groups[0]["lr"])
        last = epoch + 1 == cfg.epochs
        if state_path is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
            save_checkpoint(
                state_path,
                {
                    "spec": spec_to_dict(spec), "fingerprint": fingerprint, "epoch": epoch + 1,
                    "reference_loss": guard.reference, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                },
            )
        if stop_after_epoch is not None and stop_after_epoch(epoch + 1):
            break
    return model.eval(), losses
