"""Monte-Carlo dropout at inference, encoder once and the decoder for every pass in one batch.

Every segmentation-models-pytorch model (and the reduced U-Net) is ``segmentation_head(decoder(
encoder(x)))`` with ``encoder(x)`` a list: the input itself, then one feature map per stage, the
last being the bottleneck. ``at="skips"`` drops out every encoder→decoder connection (all maps but
the input), the DIAL code's placement (``Dropout2d(0.1)`` after each decoder block's skip sum in its
LinkNet). What that reaches depends on the decoder:

- LinkNet, U-Net, U-Net++, MAnet, FPN, the reduced U-Net: every skip and the bottleneck;
- DeepLabV3+: the bottleneck and the stride-4 skip it reads; DeepLabV3, PSPNet, PAN: the maps
  their decoders read (the bottleneck, PAN the last three).

``at="head"`` drops out the decoder's output, before the 1×1 classifier: Area Disagreement's
"dropout layer after the last parameterized layer" (of the feature path; dropping the logits
themselves would zero class scores). The encoder (``skips``) or the whole trunk (``head``) runs once;
the T passes differ only in their masks and run as a batch of T through what follows, so the result
equals T separate dropout passes with the same masks (a test checks it).
"""

from __future__ import annotations

import torch

from dial_core.active.acquisition import McDropoutConfig
from dial_core.models.segmenter import channels_last


def dropout_masks(shapes: list[torch.Size], cfg: McDropoutConfig, passes: int, generator: torch.Generator | None,
                  device: torch.device) -> list[torch.Tensor]:
    """One (T, C, 1, 1) (channel) or (T, C, H, W) (element) mask per (1, C, H, W) shape, scaled by 1/(1 − p)."""
    masks = []
    for shape in shapes:
        size = (passes, shape[1], 1, 1) if cfg.kind == "channel" else (passes, *shape[1:])
        keep = torch.rand(size, generator=generator, device=device) >= cfg.p
        masks.append(keep.float() / (1.0 - cfg.p))
    return masks


def _with_deterministic(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Masks with one more pass of ones in front: the prediction without dropout in the same batch."""
    return [torch.cat([torch.ones_like(m[:1]), m]) for m in masks]


def _decode(net, features, targets, masks, at: str) -> torch.Tensor:
    """Logits of the passes of ``masks`` (T, …): the dropped targets (broadcast (1, …) × (T, …), kept
    channels-last: a batch in the other layout makes every convolution convert it) through the rest."""
    dropped = [channels_last(t * m) for t, m in zip(targets, masks)]
    if at == "skips":
        decoded = net.decoder([channels_last(features[0].expand(len(masks[0]), *features[0].shape[1:])), *dropped])
    else:
        decoded = dropped[0]
    return net.segmentation_head(decoded)


def mc_logits(model, x: torch.Tensor, cfg: McDropoutConfig, generator: torch.Generator | None = None,
              masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits of ``cfg.passes`` dropout passes (T, N, H, W) of one (1, C, H, W) input, and the
    logits without dropout (1, N, H, W) when ``cfg.prediction`` is ``deterministic`` (else None).

    ``model`` is a :class:`~dial_core.models.segmenter.Segmenter`; ``masks`` (tests) replaces the draw.
    """
    net = model.net
    x = channels_last(x)  # the layout of the network's weights (Segmenter.forward does the same)
    if cfg.at == "skips":
        features = net.encoder(x)
        targets = features[1:]
    else:
        targets = [net.decoder(net.encoder(x))]
    if masks is None:
        masks = dropout_masks([t.shape for t in targets], cfg, cfg.passes, generator, x.device)
    if cfg.prediction == "deterministic":
        masks = _with_deterministic(masks)
    # The passes go through the decoder as batches of `chunk`: all at once on a GPU (a batch-1 window
    # does not fill it); one at a time on a CPU, where a batch of 5 full-resolution decoder passes is
    # memory-bound and cost 9× one pass (benchmarks/acquisition_cost.py: D_P), not 5×.
    passes = len(masks[0])
    chunk = passes if x.is_cuda else 1
    logits = torch.cat([_decode(net, features if cfg.at == "skips" else None, targets, [m[i : i + chunk] for m in masks], cfg.at)
                        for i in range(0, passes, chunk)])
    if cfg.prediction == "deterministic":
        return logits[1:], logits[:1]
    return logits, None
