"""Networks: the AC segmenter over segmentation-models-pytorch, ConfidNet, checkpoint I/O."""

from dial_core.torchvision_compat import ensure_torchvision_importable

# timm (imported by segmentation-models-pytorch) imports torchvision: patch first.
ensure_torchvision_importable()
