"""AC pretraining with DISIR's recipe: SGD, step schedule, crops with sampled clicks, resume."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dial_core.errors import CheckpointError, TrainingError
from dial_core.models.checkpoint import load_checkpoint, save_checkpoint
from dial_core.models.segmenter import NetworkSpec, Segmenter, spec_to_dict
from dial_core.training.crops import ClickCropDataset, ClickPolicy, CropSource, annotate_with_prediction

log = logging.getLogger(__name__)


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


def make_optimiser(model: nn.Module, cfg: PretrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    return opt, sched


def _resume(state_path: Path | None, spec: NetworkSpec, model: nn.Module, opt, sched) -> int:
    """Load the last training state if there is one; returns the epoch to start from."""
    if state_path is None or not state_path.exists():
        return 0
    state = load_checkpoint(state_path)
    if state.get("spec") != spec_to_dict(spec):
        raise CheckpointError(
            f"training state {state_path} belongs to another network ({state.get('spec')}); delete it to start afresh"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    log.info("resuming from %s at epoch %d", state_path, state["epoch"])
    return int(state["epoch"])


def train_epoch(model: nn.Module, loader: DataLoader, opt, device: torch.device, scaler, epoch: int, policy: ClickPolicy, seed: int) -> float:
    model.train()
    loss_fn = nn.CrossEntropyLoss(ignore_index=255)
    total, count = 0.0, 0
    for x, y, indices in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, mininterval=5):
        if bool((y == 255).all()):
            continue  # nothing labelled in these crops (large ignore areas): no gradient to take
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if policy.needs_prediction:
            x = annotate_with_prediction(model, x, y, indices, policy, seed, epoch)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"loss became {loss.item()} at epoch {epoch + 1}; lower pretrain.lr or check the labels "
                "(no checkpoint was written for this epoch)"
            )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        total += float(loss.detach()) * len(x)
        count += len(x)
    return total / max(count, 1)


def pretrain(
    spec: NetworkSpec,
    source: CropSource,
    policy: ClickPolicy,
    cfg: PretrainConfig,
    device: torch.device,
    state_path: Path | None = None,
    stop_after_epoch: Callable[[int], bool] | None = None,
) -> tuple[Segmenter, list[float]]:
    """Train from scratch or resume from ``state_path``; returns the model and per-epoch losses.

    ``stop_after_epoch`` lets tests simulate an interruption right after a checkpoint.
    """
    torch.manual_seed(cfg.seed)
    model = Segmenter(spec).to(device)
    opt, sched = make_optimiser(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.mixed_precision and device.type == "cuda")
    start = _resume(state_path, spec, model, opt, sched)
    losses: list[float] = []
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # per-epoch: resume gives identical draws
        data = ClickCropDataset(source, cfg.crop_size, cfg.crops_per_epoch, policy, cfg.seed, epoch)
        loader = DataLoader(
            data, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
            pin_memory=device.type == "cuda", drop_last=len(data) > cfg.batch_size,
        )
        loss = train_epoch(model, loader, opt, device, scaler, epoch, policy, cfg.seed)
        if not math.isfinite(loss):
            raise TrainingError(f"mean loss of epoch {epoch + 1} is {loss}; lower pretrain.lr")
        sched.step()
        losses.append(loss)
        log.info("epoch %d/%d loss %.4f lr %.2e", epoch + 1, cfg.epochs, loss, opt.param_groups[0]["lr"])
        last = epoch + 1 == cfg.epochs
        if state_path is not None and ((epoch + 1) % cfg.checkpoint_every == 0 or last):
            save_checkpoint(
                state_path,
                {
                    "spec": spec_to_dict(spec), "epoch": epoch + 1, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                },
            )
        if stop_after_epoch is not None and stop_after_epoch(epoch + 1):
            break
    return model.eval(), losses
