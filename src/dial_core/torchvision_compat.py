"""Let ``import torchvision`` succeed on a CPU-only torch build.

torchvision 0.28.0 is the only release that fits torch 2.13.0, but its compiled extension is
built for CUDA torch; on the CPU build ``_C.so`` fails to load and torchvision's import-time
``register_fake("torchvision::nms")`` then raises ``operator torchvision::nms does not exist``.
segmentation-models-pytorch imports timm, which imports torchvision, so nothing works.

:func:`ensure_torchvision_importable` defines the schemas of the operators that torchvision
registers fakes for at import time, *only* when its own extension cannot load. The operators
stay without kernels: calling them raises, which is fine because this project never uses
detection ops. Importing this module has no effect by itself; call the function before the
first ``import torchvision`` (``dial_core.models`` does).
"""

from __future__ import annotations

import importlib.util
import os

import torch

# Schemas as torchvision's C++ sources declare them (csrc/ops/nms.cpp and its quantized twin).
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # torchvision absent: nothing to patch
    folder = list(spec.submodule_search_locations)[0]
    candidates = [f for f in os.listdir(folder) if f.startswith("_C.") and f.endswith((".so", ".pyd"))]
    if not candidates:
        return False
    try:
        torch.ops.load_library(os.path.join(folder, candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def ensure_torchvision_importable() -> bool:
    """Define missing torchvision operator schemas; returns True when a patch was applied."""
    global _library
    if _library is not None:
        return True
    if _extension_loads():
        return False
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _SCHEMAS.items():
        try:
            getattr(torch.ops.torchvision, name)
        except (AttributeError, RuntimeError):
            _library.define(schema)
    return True
