"""ConfidNet (Corbière et al.): an auxiliary head that regresses the true-class probability.

Layout from DIAL §II-B: one transposed convolution, then 3×3 convolutions with 32, 120, 64, 32
and 1 outputs, sigmoid. The smp decoders already give features at full resolution, so the
transposed convolution keeps the stride at 1 (the authors' LinkNet ended at half resolution).
"""

from __future__ import annotations

import torch
from torch import nn


class ConfidNet(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        widths = [32, 120, 64, 32]
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_channels, widths[0], 3, padding=1), nn.ReLU(inplace=True)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(widths[-1], 1, 3, padding=1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.to(memory_format=torch.channels_last)  # the layout of the segmenter's features (segmenter.channels_last)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) confidence in [0, 1]."""
        return self.body(features)


def true_class_probability(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """TCP target (B, 1, H, W) and the mask of pixels that have a ground truth."""
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    tcp = torch.softmax(logits, dim=1).gather(1, safe.unsqueeze(1).long())
    return tcp, valid.unsqueeze(1)


def confidnet_from_state(payload: dict) -> ConfidNet:
    head = ConfidNet(int(payload["in_channels"]))
    head.load_state_dict(payload["state_dict"])
    return head.eval()
