"""A RITM-style interactive binary segmenter ("Reviving iterative training with mask guidance").

Inputs are the RGB image and three maps: positive-click disks, negative-click disks and the previous
mask (RITM's order is [prev_mask, pos, neg]; ours is [pos, neg, prev_mask], the network learns
either). Clicks enter by **Conv1S**, RITM's default fusion (isegm/model/is_model.py): a small conv
stack ``maps_transform`` encodes the maps to the channels and stride of the backbone's first conv
block (conv → norm → activation) and its output is *added* there, so the RGB stem is unchanged and
could keep ImageNet weights. Here the addition is a forward hook on the module that ends that block,
found generically for any smp encoder by tracing one tiny forward pass (ResNet: ``relu`` after
``conv1``/``bn1``; ``tu-hrnet_w18_small``: timm's ``act1`` after ``conv1``/``bn1``, exactly where
RITM's HRNet adds them).

``maps_transform`` is RITM's Conv1x1(3→16) → LeakyReLU(0.2) → Conv3x3(16→C, stride 2) →
ScaleLayer(0.05), with one deliberate change: both convolutions are **bias-free**. Then all-zero
maps give an exactly-zero addition (bias-free convs and LeakyReLU map 0 to 0), so a network with no
clicks and an empty previous mask computes exactly what its image path computes; RITM's biases would
add a learnt constant instead, which the following layers can absorb anyway.

The decoder is any smp architecture of :data:`dial_core.models.segmenter.ARCHITECTURES` with one
output class; the auxiliary head is RITM's HRNet ``aux_head`` (1×1 conv → BN → ReLU → 1×1 conv)
on the encoder's deepest feature, the backbone output that RITM also supervises directly. Both
outputs are upsampled bilinearly (align_corners=True, as RITM) to the input size.

Images are taken as given (the project's convention: RGB in [0, 1]); RITM normalises with ImageNet
mean/std because it starts from ImageNet weights, which we cannot download.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from dial_core.errors import ConfigError
from dial_core.models.segmenter import ARCHITECTURES, channels_last

MAP_CHANNELS = 3  # positive disks, negative disks, previous mask
TRACE_SIZE = 64  # side of the dummy input that locates the first conv block
# Modules that may follow the first convolution inside its block (norm, activation, no-ops).
_BLOCK_TAIL = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.Identity,
    nn.modules.dropout._DropoutNd,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Mish,
    nn.ELU,
    nn.PReLU,
)


class ScaleLayer(nn.Module):
    """RITM's learnt scalar gain (|scale|, initialised at 0.05): clicks start as a gentle nudge."""

    def __init__(self, init_value: float = 0.05):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.abs()


def maps_transform(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Conv1S map encoder; bias-free so that zero maps add exactly zero (see module docstring)."""
    kernel, padding = (3, 1) if stride <= 2 else (stride, 0)
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, kernel_size=1, bias=False),
        nn.LeakyReLU(negative_slope=0.2),
        nn.Conv2d(16, out_channels, kernel_size=kernel, stride=stride, padding=padding, bias=False),
        ScaleLayer(0.05),
    )


def first_conv_block(encoder: nn.Module, size: int = TRACE_SIZE) -> tuple[str, int, int]:
    """(module name, channels, stride) of the module whose output ends the encoder's first conv block.

    Traces one forward pass on a zero image (eval mode, no grad: no running statistic changes) and
    takes the first ``Conv2d`` called, extended over the norm/activation modules that follow it with
    the same output shape. The chosen module must run once per forward, or the hook would add twice.
    """
    calls: list[tuple[str, nn.Module, torch.Size]] = []
    handles = [
        module.register_forward_hook(lambda m, _i, out, n=name: calls.append((n, m, out.shape)) if torch.is_tensor(out) else None)
        for name, module in encoder.named_modules()
        if name
    ]
    training = encoder.training
    try:
        encoder.eval()
        with torch.no_grad():
            encoder(torch.zeros(1, 3, size, size))
    finally:
        encoder.train(training)
        for handle in handles:
            handle.remove()
    start = next((i for i, (_, m, _s) in enumerate(calls) if isinstance(m, nn.Conv2d)), None)
    if start is None:
        raise ConfigError(f"RITM Conv1S: encoder {type(encoder).__name__} has no Conv2d to fuse click maps into")
    shape = calls[start][2]
    block = [calls[start]]
    for call in calls[start + 1 :]:
        if not (isinstance(call[1], _BLOCK_TAIL) and call[2] == shape):
            break
        block.append(call)
    counts: dict[int, int] = {}
    for _, module, _s in calls:
        counts[id(module)] = counts.get(id(module), 0) + 1
    once = [name for name, module, _s in block if counts[id(module)] == 1]
    if not once:
        raise ConfigError(f"RITM Conv1S: the first conv block of {type(encoder).__name__} runs more than once per forward")
    stride = size // shape[-1]
    return once[-1], int(shape[1]), int(stride)


class RITMNet(nn.Module):
    """Interactive binary segmenter: ``forward(image, maps) -> (logits, aux_logits)``, each (B,1,H,W)."""

    def __init__(
        self,
        encoder: str = "resnet18",
        arch: str = "unet",
        encoder_weights: str | None = None,
        map_channels: int = MAP_CHANNELS,
    ):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ConfigError(f"RITM network arch {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
        if encoder_weights is not None and os.environ.get("HF_HUB_OFFLINE", "1") == "1":
            raise ConfigError(
                f"encoder_weights={encoder_weights!r} needs the model hub, which is offline; use encoder_weights: null"
            )
        try:
            self.net = ARCHITECTURES[arch](encoder_name=encoder, encoder_weights=encoder_weights, in_channels=3, classes=1)
        except (KeyError, ValueError) as err:
            raise ConfigError(f"RITM network encoder {encoder!r} for {arch}: {err}") from None
        self.fusion_module, self.fusion_channels, self.fusion_stride = first_conv_block(self.net.encoder)
        self.maps_transform = maps_transform(map_channels, self.fusion_channels, self.fusion_stride)
        deepest = int(self.net.encoder.out_channels[-1])
        self.aux_head = nn.Sequential(
            nn.Conv2d(deepest, deepest, kernel_size=1),
            nn.BatchNorm2d(deepest),
            nn.ReLU(inplace=True),
            nn.Conv2d(deepest, 1, kernel_size=1),
        )
        self._maps_features: torch.Tensor | None = None
        self.net.encoder.get_submodule(self.fusion_module).register_forward_hook(self._add_maps)
        self.to(memory_format=torch.channels_last)

    def _add_maps(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Forward hook: first conv block output + encoded maps (Conv1S); a no-op without maps."""
        extra = self._maps_features
        if extra is None:
            return None
        if extra.shape != output.shape:
            raise ValueError(
                f"RITM Conv1S: encoded maps {tuple(extra.shape)} do not match the first conv block "
                f"{tuple(output.shape)}; give maps of the image's height and width"
            )
        return output + extra

    def forward(self, image: torch.Tensor, maps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``maps`` (B,3,H,W) = [positive disks, negative disks, previous mask]; None: image path only."""
        image = channels_last(image)
        self._maps_features = None if maps is None else self.maps_transform(channels_last(maps))
        try:
            features = self.net.encoder(image)
        finally:
            self._maps_features = None
        logits = self.net.segmentation_head(self.net.decoder(features))
        aux = self.aux_head(features[-1])
        size = image.shape[-2:]
        return _resize(logits, size), _resize(aux, size)


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=True)


def click_maps(clicks: Iterable[tuple[int, int, bool]], shape: tuple[int, int], radius: float = 5.0) -> np.ndarray:
    """(2,H,W) float32 disks: channel 0 positive, 1 negative clicks (RITM's DistMaps, use_disks=True).

    A pixel is 1 when its squared distance to a click of that sign is ≤ radius², as RITM's
    ``dist <= norm_radius**2``. Only each click's bounding window is computed.
    """
    height, width = shape
    maps = np.zeros((2, height, width), dtype=np.float32)
    reach = int(np.floor(radius))
    for row, col, positive in clicks:
        r0, r1 = max(row - reach, 0), min(row + reach + 1, height)
        c0, c1 = max(col - reach, 0), min(col + reach + 1, width)
        if r0 >= r1 or c0 >= c1:
            continue
        rr = np.arange(r0, r1)[:, None] - row
        cc = np.arange(c0, c1)[None, :] - col
        disk = rr**2 + cc**2 <= radius**2
        window = maps[0 if positive else 1, r0:r1, c0:c1]
        window[disk] = 1.0
    return maps
