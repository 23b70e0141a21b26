"""The diversity of a selected batch (AD Fig. 4): objects and classes per label map.

AD counts an "object" as a connected area of one class, since Cityscapes' semantic labels carry
no instance ids (fragments of one object count twice, touching objects of a class once). AD does
not say which neighbourhood; we use 8-connectivity (diagonal neighbours connect, the default of
OpenCV's connected components) and make it a parameter. Ignored pixels (255) belong to no object
and separate the areas they cut.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from dial_core.errors import ConfigError

_STRUCTURES = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


def label_diversity(label: np.ndarray, ignore_index: int = 255, connectivity: int = 8) -> tuple[int, int]:
    """(objects, classes) of one (H, W) label map: connected components summed over the classes
    present, and the number of classes present."""
    if connectivity not in _STRUCTURES:
        raise ConfigError(f"diversity connectivity = {connectivity}: choose 4 or 8")
    classes = [int(c) for c in np.unique(label) if c != ignore_index]
    objects = sum(int(ndimage.label(label == c, structure=_STRUCTURES[connectivity])[1]) for c in classes)
    return objects, len(classes)


def batch_diversity(labels: Iterable[np.ndarray], ignore_index: int = 255, connectivity: int = 8) -> dict[str, float]:
    """Mean objects and classes per image of a batch (AD Fig. 4 a and b), and its size: the
    columns the pool loop's ``describe_selection`` adds to a row."""
    counts = [label_diversity(label, ignore_index, connectivity) for label in labels]
    if not counts:
        return {"objects_per_image": float("nan"), "classes_per_image": float("nan"), "batch_images": 0}
    objects, classes = np.asarray(counts, dtype=float).T
    return {"objects_per_image": float(objects.mean()), "classes_per_image": float(classes.mean()),
            "batch_images": len(counts)}
