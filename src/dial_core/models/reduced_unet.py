"""Area Disagreement's reduced U-Net (AD §IV.C, after Ronneberger et al.), shaped like an smp model.

Four down blocks of 32-64-128-256 filters (two 3×3 conv + BN + ReLU, then 2×2 max-pool), a
512-filter bottleneck, a symmetric up path (2×2 transposed conv, concatenated skip, two convs) and
a 1×1 classifier. It exposes ``encoder`` / ``decoder`` / ``segmentation_head`` and takes smp's
constructor keywords, so :class:`dial_core.models.segmenter.Segmenter` (and everything built on it:
checkpoints, ConfidNet's feature hook, inference) uses it like any smp architecture.

The input height and width must be divisible by 16 (four poolings); our inference pads to 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from dial_core.errors import ConfigError

DOWN_CHANNELS = (32, 64, 128, 256)
BOTTLENECK_CHANNELS = 512
SIZE_MULTIPLE = 2 ** len(DOWN_CHANNELS)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3×3 conv + BN + ReLU: the unit of every U-Net stage."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ReducedUNetEncoder(nn.Module):
    """x -> [x, skip 32 (1/1), skip 64 (1/2), skip 128 (1/4), skip 256 (1/8), bottleneck 512 (1/16)].

    smp's convention (features[0] is the input itself) so smp-style decoders and hooks index it alike.
    """

    def __init__(self, in_channels: int, channels: Sequence[int] = DOWN_CHANNELS, bottleneck: int = BOTTLENECK_CHANNELS):
        super().__init__()
        widths = [in_channels, *channels]
        self.blocks = nn.ModuleList(double_conv(a, b) for a, b in pairwise(widths))
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(widths[-1], bottleneck)
        self.out_channels = (in_channels, *channels, bottleneck)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"reduced_unet needs input sizes divisible by {SIZE_MULTIPLE}, got {h}x{w}; pad the input")
        features = [x]
        for block in self.blocks:
            x = block(x)
            features.append(x)
            x = self.pool(x)
        features.append(self.bottleneck(x))
        return features


class UpBlock(nn.Module):
    """2×2 transposed conv halving the channels, concat the skip, two 3×3 convs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = double_conv(in_channels // 2 + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class ReducedUNetDecoder(nn.Module):
    """Encoder features -> full-resolution map of ``channels[0]`` (32) channels."""

    def __init__(self, channels: Sequence[int] = DOWN_CHANNELS, bottleneck: int = BOTTLENECK_CHANNELS):
        super().__init__()
        ups, width = [], bottleneck
        for skip in reversed(channels):
            ups.append(UpBlock(width, skip, skip))
            width = skip
        self.blocks = nn.ModuleList(ups)
        self.out_channels = channels[0]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x, skips = features[-1], features[1:-1]
        for block, skip in zip(self.blocks, reversed(skips)):
            x = block(x, skip)
        return x


class ReducedUNet(nn.Module):
    """The reduced U-Net with smp's constructor keywords and submodule names.

    ``encoder_name`` is ignored (the network has no interchangeable encoder); ``encoder_weights``
    must be None: there are no pretrained weights for it, and AD trains it from scratch.
    """

    def __init__(
        self,
        encoder_name: str = "none",
        encoder_weights: str | None = None,
        in_channels: int = 3,
        classes: int = 1,
    ):
        super().__init__()
        if encoder_weights is not None:
            raise ConfigError(
                f"network encoder_weights = {encoder_weights!r}: reduced_unet has no pretrained weights "
                "(AD trains it from scratch); set encoder_weights: null"
            )
        if in_channels < 1 or classes < 1:
            raise ConfigError(f"reduced_unet: in_channels ({in_channels}) and classes ({classes}) must be >= 1")
        self.encoder = ReducedUNetEncoder(in_channels)
        self.decoder = ReducedUNetDecoder()
        self.segmentation_head = nn.Sequential(nn.Conv2d(self.decoder.out_channels, classes, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmentation_head(self.decoder(self.encoder(x)))
