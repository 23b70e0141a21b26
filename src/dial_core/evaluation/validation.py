"""Validation of a trained network without clicks: dataset-level mIoU over whole images."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from dial_core.evaluation.metrics import confusion_matrix, iou_per_class
from dial_core.interactive.inference import predict_probs
from dial_core.models.segmenter import Segmenter


def validation_scores(model: Segmenter, samples: Iterable[tuple[np.ndarray, np.ndarray]], class_names: Sequence[str], window: int, overlap: int) -> dict:
    """mIoU, per-class IoU and accuracy from the confusion matrix summed over all images."""
    n = len(class_names)
    total = np.zeros((n, n), dtype=np.int64)
    for image, label in samples:
        probs, _ = predict_probs(model, image, None, window, overlap)
        total += confusion_matrix(label, probs.argmax(0), n)
    iou = iou_per_class(total)
    return {
        "miou": float(np.nanmean(iou)),
        "accuracy": float(np.trace(total) / max(total.sum(), 1)),
        "iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
    }
