"""Random training crops with clicks, deterministic per (seed, epoch, index).

Each item draws from its own ``numpy`` generator seeded by (seed, epoch, index), so a batch does
not depend on worker count or on whether training was resumed (resume equivalence).
Clicks that depend on the network's current prediction (C-PM encoding, mistake positions) are
added to the batch after a first inference by :func:`annotate_with_prediction`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from dial_core.clicks.encoding import ClickEncoder
from dial_core.clicks.sampling import sample_training_clicks
from dial_core.models.segmenter import network_input

# read(index, row_off, col_off, height, width) -> (image HxWx3 uint8, label HxW uint8)
WindowReader = Callable[[int, int, int, int, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class CropSource:
    """Where crops come from: image shapes and a windowed reader (in memory or raster-backed)."""

    shapes: Sequence[tuple[int, int]]
    read: WindowReader

    @classmethod
    def from_arrays(cls, images: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> "CropSource":
        def read(i: int, r: int, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
            return images[i][r : r + h, c : c + w], labels[i][r : r + h, c : c + w]

        return cls([lab.shape for lab in labels], read)


@dataclass(frozen=True)
class ClickPolicy:
    """DISIR's training clicks: P(clicks), 1..max per crop, balanced by class weights, placed at
    ``position`` (inside / border / mistake) and encoded by ``encoder``."""

    click_probability: float
    max_clicks: int
    class_weights: np.ndarray
    encoder: ClickEncoder
    position: str = "inside"

    @property
    def needs_prediction(self) -> bool:
        return self.encoder.needs_prediction or self.position == "mistake"

    def clicks_for(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator, prediction: np.ndarray | None = None) -> np.ndarray:
        """Annotation channels of one crop."""
        clicks = sample_training_clicks(
            label, self.class_weights, rng, self.click_probability, self.max_clicks,
            position=self.position, prediction=prediction,
        )
        return self.encoder(clicks, label.shape, image=image, prediction=prediction, label=label)


def random_crop(source: CropSource, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    index = int(rng.integers(len(source.shapes)))
    height, width = source.shapes[index]
    h, w = min(size, height), min(size, width)
    row = int(rng.integers(height - h + 1))
    col = int(rng.integers(width - w + 1))
    image, label = source.read(index, row, col, h, w)
    if (h, w) != (size, size):  # small images: pad (label ignore) to keep batches rectangular
        image = np.pad(image, ((0, size - h), (0, size - w), (0, 0)), mode="reflect")
        label = np.pad(label, ((0, size - h), (0, size - w)), constant_values=255)
    return image, label


def flip(image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    if rng.random() < 0.5:
        image, label = image[::-1], label[::-1]
    return image, label


class ClickCropDataset(Dataset):
    """``length`` random crops (one epoch) with flips and sampled clicks: (x, y, index) items."""

    def __init__(self, source: CropSource, crop_size: int, length: int, policy: ClickPolicy, seed: int, epoch: int):
        self.source, self.crop_size, self.length = source, crop_size, length
        self.policy, self.seed, self.epoch = policy, seed, epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, label = flip(*random_crop(self.source, self.crop_size, rng), rng)
        image, label = np.ascontiguousarray(image), np.ascontiguousarray(label)
        # prediction-dependent clicks come later (annotate_with_prediction); channels stay zero here
        channels = None if self.policy.needs_prediction else self.policy.clicks_for(image, label, rng)
        x = network_input(image, channels, self.policy.encoder.n_channels)
        return x, torch.from_numpy(label).long(), index


def annotate_with_prediction(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, policy: ClickPolicy, seed: int, epoch: int) -> torch.Tensor:
    """Fill the annotation channels of a batch from clicks that need the current prediction.

    The first inference runs without clicks and in eval mode, so batch-norm statistics are not
    updated by it; each crop's clicks come from its own generator (seed, epoch, index, 1).
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        prediction = model(x).argmax(1).cpu().numpy()
    model.train(was_training)
    rgb = (x[:, :3] * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    labels = y.cpu().numpy()
    channels = np.stack([
        policy.clicks_for(rgb[b], labels[b], np.random.default_rng([seed, epoch, int(indices[b]), 1]), prediction[b])
        for b in range(len(x))
    ])
    x = x.clone()
    x[:, 3:] = torch.from_numpy(channels).to(x.device)
    return x


def raster_crop_source(root, image_ids: Sequence[str]) -> CropSource:
    """Crops read window by window from the canonical GeoTIFFs (big rasters never fully loaded)."""
    from rasterio.windows import Window

    from dial_core.data.canonical import raster_shape, read_image, read_label

    ids = list(image_ids)

    def read(i: int, r: int, c: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        window = Window(c, r, w, h)
        return read_image(root, ids[i], window), read_label(root, ids[i], window)

    return CropSource([raster_shape(root, i) for i in ids], read)
