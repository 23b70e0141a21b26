"""The interactive segmenter: an smp architecture whose first convolution takes RGB + N channels."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

import dial_core.models  # noqa: F401  (torchvision compatibility before smp)
import segmentation_models_pytorch as smp
from dial_core.clicks.encoding import ClickEncoder
from dial_core.errors import ConfigError
from dial_core.models.reduced_unet import ReducedUNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "linknet": smp.Linknet,
    "unet": smp.Unet,
    "unetplusplus": smp.UnetPlusPlus,
    "fpn": smp.FPN,
    "pspnet": smp.PSPNet,
    "deeplabv3": smp.DeepLabV3,
    "deeplabv3plus": smp.DeepLabV3Plus,
    "manet": smp.MAnet,
    "pan": smp.PAN,
    "reduced_unet": ReducedUNet,  # Area Disagreement's from-scratch U-Net; the encoder name is ignored
}
# Every smp model divides the input by 2**5 at most; LinkNet needs it exactly.
SIZE_MULTIPLE = 32


@dataclass(frozen=True)
class NetworkSpec:
    """What defines a network and how it reads clicks; stored in every checkpoint to rebuild it,
    so evaluation always encodes clicks the way the network was trained to read them."""

    arch: str
    encoder: str
    n_classes: int
    annotation: str = "per_class"  # or "single": DISIR's one-channel variants
    encoding: str = "dt"
    radius: float = 10.0
    encoder_weights: str | None = None

    @property
    def n_annotation_channels(self) -> int:
        return self.click_encoder().n_channels

    @property
    def in_channels(self) -> int:
        return 3 + self.n_annotation_channels

    def click_encoder(self) -> ClickEncoder:
        return ClickEncoder(self.encoding, self.radius, self.n_classes, self.annotation)


class Segmenter(nn.Module):
    """Wraps an smp model and exposes the last decoder features that ConfidNet reads."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        if spec.arch not in ARCHITECTURES:
            raise ConfigError(f"network arch {spec.arch!r}: choose one of {', '.join(ARCHITECTURES)}")
        if spec.encoder_weights is not None and os.environ.get("HF_HUB_OFFLINE", "1") == "1":
            raise ConfigError(
                f"encoder_weights={spec.encoder_weights!r} needs the model hub, which is offline; "
                "use encoder_weights: null or set HF_HUB_OFFLINE=0 on a machine with network access"
            )
        self.spec = spec
        try:
            self.net = ARCHITECTURES[spec.arch](
                encoder_name=spec.encoder,
                encoder_weights=spec.encoder_weights,
                in_channels=spec.in_channels,
                classes=spec.n_classes,
            )
        except (KeyError, ValueError) as err:
            raise ConfigError(f"network encoder {spec.encoder!r} for {spec.arch}: {err}") from None
        self.feature_channels = int(self.net.segmentation_head[0].in_channels)
        self.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, decoder features at the head's input), both at the input resolution."""
        decoded = self.net.decoder(self.net.encoder(channels_last(x)))
        logits = self.net.segmentation_head(decoded)
        if decoded.shape[-2:] != logits.shape[-2:]:  # heads that upsample (DeepLabV3, PSPNet)
            decoded = nn.functional.interpolate(decoded, size=logits.shape[-2:], mode="bilinear")
        return logits, decoded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(channels_last(x))


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the channels-last layout the networks' weights use (same values, other strides): on
    CPU the convolutions run 20-35 % faster that way (LinkNet-R18 on 2 cores: training step −22 %,
    inference −30 %), the method unchanged. Batches of images only; other tensors pass as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def spec_to_dict(spec: NetworkSpec) -> dict:
    return asdict(spec)


def network_input(image: np.ndarray, annotations: np.ndarray | None, n_channels: int) -> torch.Tensor:
    """(3 + n_channels, H, W) float tensor: RGB scaled to [0, 1] (no mean/std, as DISIR) + annotation channels."""
    rgb = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
    if annotations is None:
        annotations = np.zeros((n_channels, *image.shape[:2]), dtype=np.float32)
    return torch.cat([rgb, torch.from_numpy(np.ascontiguousarray(annotations, dtype=np.float32))])


def segmenter_state(model: Segmenter, classes: list[dict] | None = None) -> dict:
    """The payload of a trained-network checkpoint: enough to rebuild it without params. ``classes``
    (dataset.json's ``[{"name", "color"}]``) lets the command line name and colour its outputs."""
    payload = {"spec": spec_to_dict(model.spec), "state_dict": model.state_dict()}
    if classes is not None:
        if len(classes) != model.spec.n_classes:
            raise ValueError(f"{len(classes)} classes given for a network of {model.spec.n_classes}")
        payload["classes"] = [{"name": str(c["name"]), "color": [int(v) for v in c["color"]]} for c in classes]
    return payload


def segmenter_from_state(payload: dict) -> Segmenter:
    model = Segmenter(NetworkSpec(**payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def pick_device(prefer: str = "auto") -> torch.device:
    """``auto`` takes the GPU when there is one; runtime choice, never a param."""
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(prefer)
