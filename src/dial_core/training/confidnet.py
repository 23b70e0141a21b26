"""ConfidNet training: the segmenter is frozen, the head regresses the true-class probability (MSE)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dial_core.models.confidnet import ConfidNet, true_class_probability
from dial_core.models.segmenter import Segmenter
from dial_core.training.crops import ClickCropDataset, ClickPolicy, CropSource, annotate_with_prediction
from dial_core.training.pretrain import DIVERGENCE_FACTOR, DivergenceGuard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfidNetConfig:
    epochs: int
    crops_per_epoch: int
    crop_size: int
    batch_size: int
    lr: float
    seed: int
    workers: int = 0


def train_confidnet(
    segmenter: Segmenter, source: CropSource, policy: ClickPolicy, cfg: ConfidNetConfig, device: torch.device
) -> tuple[ConfidNet, list[float]]:
    """Adam on MSE(confidence, TCP) over labelled pixels; returns the head and per-epoch losses.

    A NaN or exploded loss (pretraining's guard with its default factor, ``DIVERGENCE_FACTOR``)
    raises :class:`~dial_core.errors.TrainingError`.
    """
    torch.manual_seed(cfg.seed)
    segmenter = segmenter.to(device).eval()  # frozen: only used under no_grad below
    head = ConfidNet(segmenter.feature_channels).to(device)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    guard = DivergenceGuard(DIVERGENCE_FACTOR, "ConfidNet loss", "lower confidnet.lr or check the labels")
    losses = []
    for epoch in range(cfg.epochs):
        data = ClickCropDataset(source, cfg.crop_size, cfg.crops_per_epoch, policy, cfg.seed + 1, epoch)
        loader = DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.workers)
        head.train()
        total, count = 0.0, 0
        for x, y, indices in tqdm(loader, desc=f"confidnet epoch {epoch + 1}", leave=False, mininterval=5):
            if bool((y == 255).all()):
                continue  # no labelled pixel, no target
            x, y = x.to(device), y.to(device)
            if policy.needs_prediction:
                x = annotate_with_prediction(segmenter, x, y, indices, policy, cfg.seed + 1, epoch)
            with torch.no_grad():
                logits, features = segmenter.forward_features(x)
                tcp, valid = true_class_probability(logits, y)
            confidence = head(features)
            loss = ((confidence - tcp) ** 2)[valid].mean()
            value = float(loss.detach())
            guard.check(value, epoch)  # before the step: a diverged batch changes no weight
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + value * len(x), count + len(x)
        losses.append(total / max(count, 1))
        guard.end_epoch(losses[-1])
        log.info("confidnet epoch %d/%d mse %.5f", epoch + 1, cfg.epochs, losses[-1])
    return head.eval(), losses
