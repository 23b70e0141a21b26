"""Segmentation metrics from a confusion matrix (classes absent from both maps give NaN IoU)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(label: np.ndarray, prediction: np.ndarray, n_classes: int, ignore_index: int = 255) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = ground truth, columns = prediction."""
    valid = label != ignore_index
    index = label[valid].astype(np.int64) * n_classes + prediction[valid].astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def segmentation_scores(label: np.ndarray, prediction: np.ndarray, n_classes: int, ignore_index: int = 255) -> dict[str, float | np.ndarray]:
    """mIoU (mean over classes present in GT or prediction), per-class IoU, accuracy, correct pixels."""
    confusion = confusion_matrix(label, prediction, n_classes, ignore_index)
    iou = iou_per_class(confusion)
    correct = int(np.trace(confusion))
    total = int(confusion.sum())
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "iou": iou,
        "accuracy": correct / total if total else float("nan"),
        "correct_pixels": correct,
    }


def number_of_clicks(curve: np.ndarray, threshold: float, budget: int) -> int:
    """NoC@threshold: first step whose score reaches ``threshold``; ``budget`` when never reached."""
    reached = np.flatnonzero(np.asarray(curve) >= threshold)
    return int(reached[0]) if reached.size else budget
