"""One iteration of pool-based active learning: train a network from scratch on the labelled
images (AD §IV.C): random crops, flips and brightness, batch 4, at most 50 epochs, early stopping
on the validation loss with patience 5, and the best-validation weights kept.

AD does not name its optimiser or learning rate; we use Adam at 1e-3 (the common default for a
U-Net trained from scratch) and make both params. An epoch is ``crops_per_image`` random crops of
every training image, in a seeded random order.

Pool networks read no clicks: their annotation channels (``NetworkSpec`` always has at least one,
``per_class`` or ``single``) are fed zeros, as an AC network without clicks; a ``single`` spec
keeps that to one channel.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dial_core.clicks.encoding import ClickEncoder
from dial_core.errors import ConfigError, TrainingError
from dial_core.interactive.inference import forward_window
from dial_core.models.segmenter import NetworkSpec, Segmenter, network_input
from dial_core.training.crops import ClickPolicy, CropSource, flip, random_crop
from dial_core.training.pretrain import DivergenceGuard, train_epoch

log = logging.getLogger(__name__)

PARAMS_KEY = "active_learning.training"  # named in error messages

# train_epoch adds clicks only for policies that need a prediction; pool training adds none.
_NO_CLICKS = ClickPolicy(0.0, 1, np.ones(1), ClickEncoder("dt", 1.0, 1))


@dataclass(frozen=True)
class PoolTrainConfig:
    crop_size: int = 128
    batch_size: int = 4  # AD
    lr: float = 1e-3  # not stated by AD: Adam at 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 50  # AD
    patience: int = 5  # AD: stop when the validation loss has not improved for 5 epochs
    min_delta: float = 0.0  # an improvement must lower the best validation loss by more than this
    brightness: float = 0.2  # RGB multiplied by a factor drawn in [1 - b, 1 + b]
    crops_per_image: int = 1
    workers: int = 0
    mixed_precision: bool = False
    divergence_factor: float = 1000.0

    def __post_init__(self) -> None:
        checks = {
            "crop_size": self.crop_size >= 16, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0, "max_epochs": self.max_epochs >= 1, "patience": self.patience >= 1,
            "min_delta": self.min_delta >= 0, "brightness": 0 <= self.brightness < 1,
            "crops_per_image": self.crops_per_image >= 1, "workers": self.workers >= 0,
        }
        wanted = {"crop_size": ">= 16", "brightness": "in [0, 1)", "lr": "> 0", "weight_decay": ">= 0", "min_delta": ">= 0",
                  "workers": ">= 0"}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{PARAMS_KEY}.{name} = {getattr(self, name)}: must be {wanted.get(name, '>= 1')}")


# --------------------------------------------------------------------------------------------
# early stopping (pure)
# --------------------------------------------------------------------------------------------


@dataclass
class EarlyStopping:
    """Tracks the best validation loss; ``stop`` once ``patience`` epochs in a row did not improve it."""

    patience: int
    min_delta: float = 0.0
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, loss: float, epoch: int) -> bool:
        """Record an epoch's validation loss; True when it is the new best (keep these weights)."""
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def stop(self) -> bool:
        return self.bad_epochs >= self.patience


def early_stopping_epochs(val_losses: list[float], patience: int, min_delta: float = 0.0) -> tuple[int, int]:
    """(best epoch, last epoch trained), 0-based, for a sequence of validation losses: what
    :func:`train_pool_model` does with them (a test can check the rule without training)."""
    stopper = EarlyStopping(patience, min_delta)
    for epoch, loss in enumerate(val_losses):
        stopper.update(loss, epoch)
        if stopper.stop:
            return stopper.best_epoch, epoch
    return stopper.best_epoch, len(val_losses) - 1


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def brighten(x: torch.Tensor, factor: float) -> torch.Tensor:
    """RGB channels (the first three, in [0, 1]) times ``factor``, clipped; other channels kept."""
    x = x.clone()
    x[:3] = (x[:3] * factor).clamp(0.0, 1.0)
    return x


class PoolCropDataset(Dataset):
    """One epoch: ``crops_per_image`` augmented crops of every image of ``source``, in a seeded order.

    Each item draws from its own generator (seed, epoch, index): batches do not depend on workers.
    """

    def __init__(self, source: CropSource, cfg: PoolTrainConfig, n_annotation_channels: int, seed: int, epoch: int):
        self.source, self.cfg, self.n_channels, self.seed, self.epoch = source, cfg, n_annotation_channels, seed, epoch
        n = len(source.shapes) * cfg.crops_per_image
        self.order = np.random.default_rng([seed, epoch, 1 << 20]).permutation(n) % len(source.shapes)

    def __len__(self) -> int:
        return len(self.order)

    def _single(self, index: int) -> CropSource:
        """The image ``index`` as a one-image source, so :func:`random_crop` crops (and pads) it."""
        read = self.source.read
        return CropSource([self.source.shapes[index]], lambda _, r, c, h, w: read(index, r, c, h, w))

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.epoch, item])
        image, label = flip(*random_crop(self._single(int(self.order[item])), self.cfg.crop_size, rng), rng)
        x = network_input(np.ascontiguousarray(image), None, self.n_channels)
        b = self.cfg.brightness
        if b > 0:
            x = brighten(x, float(rng.uniform(1 - b, 1 + b)))
        return x, torch.from_numpy(np.ascontiguousarray(label)).long(), item


@torch.no_grad()
def validation_loss(model: Segmenter, source: CropSource, device: torch.device) -> float:
    """Mean cross-entropy over the labelled pixels of the whole validation images (padded to the
    network's size multiple and cropped back). NaN when no pixel is labelled."""
    model.eval()
    total, count = 0.0, 0
    for index, (height, width) in enumerate(source.shapes):
        image, label = source.read(index, 0, 0, height, width)
        target = torch.from_numpy(np.ascontiguousarray(label)).long().to(device)
        labelled = int((target != 255).sum())
        if labelled == 0:
            continue
        x = network_input(np.ascontiguousarray(image), None, model.spec.n_annotation_channels).to(device)
        logits, _ = forward_window(model, x)
        total += float(nn.functional.cross_entropy(logits[None], target[None], ignore_index=255, reduction="sum"))
        count += labelled
    return total / count if count else math.nan


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


@dataclass
class PoolTrainHistory:
    """What one iteration's training did: per-epoch losses, the epoch whose weights were kept
    (1-based), the last epoch trained and whether early stopping ended it."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_epoch: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def train_pool_model(
    spec: NetworkSpec,
    train: CropSource,
    val: CropSource,
    cfg: PoolTrainConfig,
    seed: int,
    device: torch.device,
) -> tuple[Segmenter, PoolTrainHistory]:
    """Train ``spec`` from scratch on ``train``; returns the weights of the epoch with the lowest
    loss on ``val`` (restored) and the history. Without validation images (a labelled set of one)
    the last epoch's weights are kept. The same seed gives the same weights on the same machine."""
    if not train.shapes:
        raise TrainingError("pool training got no training image; the labelled set must hold at least one")
    torch.manual_seed(seed)
    model = Segmenter(spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.mixed_precision and device.type == "cuda")
    guard = DivergenceGuard(cfg.divergence_factor, "loss", f"lower {PARAMS_KEY}.lr or check the labels")
    stopper = EarlyStopping(cfg.patience, cfg.min_delta)
    history = PoolTrainHistory()
    best_state: dict[str, torch.Tensor] | None = None
    n_channels = spec.n_annotation_channels
    for epoch in range(cfg.max_epochs):  # progress: train_epoch's tqdm bar and one log line per epoch
        torch.manual_seed(seed * 100_003 + epoch)
        crops = PoolCropDataset(train, cfg, n_channels, seed, epoch)
        loader = DataLoader(crops, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
                            pin_memory=device.type == "cuda", drop_last=len(crops) > cfg.batch_size)
        loss = train_epoch(model, loader, opt, device, scaler, epoch, _NO_CLICKS, seed, guard)
        guard.end_epoch(loss)
        history.train_loss.append(loss)
        history.stopped_epoch = epoch + 1
        if not val.shapes:
            log.info("epoch %d/%d train loss %.4f (no validation images)", epoch + 1, cfg.max_epochs, loss)
            continue
        v = validation_loss(model, val, device)
        if not math.isfinite(v):
            raise TrainingError(
                f"validation loss of epoch {epoch + 1} is {v} (no labelled validation pixel, or the network diverged); "
                f"check the validation labels or lower {PARAMS_KEY}.lr"
            )
        history.val_loss.append(v)
        log.info("epoch %d/%d train loss %.4f val loss %.4f", epoch + 1, cfg.max_epochs, loss, v)
        if stopper.update(v, epoch):
            best_state = copy.deepcopy({k: t.detach().cpu() for k, t in model.state_dict().items()})
        if stopper.stop:
            history.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
        history.best_epoch = stopper.best_epoch + 1
    else:
        history.best_epoch = history.stopped_epoch
        log.warning("no validation images: keeping the weights of the last epoch (%d)", history.stopped_epoch)
    return model.eval(), history
