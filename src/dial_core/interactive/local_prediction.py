"""Exact local re-prediction after a click: only the windows whose annotation channels changed are
inferred again, and the probabilities equal whole-image inference (:func:`predict_probs`) bit for bit.

Why it is exact: :func:`predict_probs` sums each window's softmax in tile order in float32 and divides
by the number of windows covering the pixel. The predictor keeps every window's softmax (a cache under
a byte cap; a window not in it is inferred again from the current channels) and recomputes the pixels
of the re-inferred windows from the softmax of *every* window covering them, in the same order and
dtype, from the same input values as there.

Why windows go through the network together on a CPU: a click near a window corner touches up to
four windows, and on 2 CPU cores a batch of four 512² windows takes about half the time of four
single passes (LinkNet-R18: 2.4 s against 5.7 s on a loaded machine), which is what keeps such a click
near one second. A batch is not always computed as its windows alone, though: oneDNN picks its
kernels by shape, and with 128² windows a batch of four differs from single passes in the last bit
while with 512² windows it does not. So the predictor checks once, on the first windows of its first
pass, that a batch gives exactly the single passes' softmax, and infers one window at a time when it
does not (``batch`` says which it uses). On a GPU windows go one at a time. ``dial serve`` asks for
batches (``batch=None``); the evaluation protocols keep one window per pass.

Why it is local: a click changes the channels within ``ClickEncoder.reach`` px of itself only, so the
channels are re-encoded on a crop around it (clicks, guide and maps of the crop only) and compared
with the stored ones; the work per click does not grow with the image.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from dial_core.clicks.encoding import ClickEncoder
from dial_core.clicks.types import Click
from dial_core.data.tiling import tile_windows
from dial_core.interactive.inference import forward_windows
from dial_core.models.segmenter import Segmenter, network_input

Window = tuple[int, int, int, int]  # (row_off, col_off, height, width)
# The annotation channels of a window of the image for these clicks (image coordinates; clicks outside
# the window are ignored), as the whole-image encoding would give them there: _Scene.channels.
EncodeFn = Callable[[Sequence[Click], Window], np.ndarray]
DEFAULT_CACHE_BYTES = 3 * 2**29  # 1.5 GiB: every window of a 6000² image, 6 classes, 384 px windows
CPU_BATCH = 4  # the most windows one click can touch (a point lies in at most 2×2 windows when overlap < window / 2)


def crop_encoder(encoder: ClickEncoder, image: np.ndarray | None = None, prediction: np.ndarray | None = None,
                 label: np.ndarray | None = None) -> EncodeFn:
    """An :data:`EncodeFn` for ``encoder`` with its whole-image context (guide, C-PM prediction, C-GT label)."""
    def encode(clicks: Sequence[Click], window: Window) -> np.ndarray:
        r, c, h, w = window
        crop = (slice(r, r + h), slice(c, c + w))
        pick = lambda a: None if a is None else a[crop]
        return encoder([k.shifted(r, c) for k in clicks], (h, w), image=pick(image), prediction=pick(prediction),
                       label=pick(label))
    return encode


def _span(offsets: np.ndarray, size: int, lo: int, hi: int) -> np.ndarray:
    """Indices of the windows along one axis that intersect [lo, hi)."""
    return np.flatnonzero((offsets < hi) & (offsets + size > lo))


class ClickPredictor:
    """AC prediction of one image (``probs`` (N, H, W) float32, ``prediction`` (H, W)) kept current as
    clicks come. Both arrays are updated in place: copy what must stay as it was.

    ``encode`` is passed to each update rather than held, since C-PM encodes against the
    prediction this predictor makes first (no clicks).
    """

    def __init__(self, model: Segmenter, image: np.ndarray, window: int, overlap: int,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, batch: int | None = 1):
        self.model, self.image = model, image
        # windows per forward pass (see the module's notes): None = CPU_BATCH on a CPU, 1 on a GPU, when exact.
        # 1 by default: the protocols' predictors run one pass per image, where the check would cost more
        on_cpu = next(model.parameters()).device.type == "cpu"
        self.batch = 1
        requested = batch if batch is not None else (CPU_BATCH if on_cpu else 1)
        height, width = image.shape[:2]
        self.windows = tile_windows(height, width, window, overlap)
        self._rows = np.array(sorted({r for r, _, _, _ in self.windows}))
        self._cols = np.array(sorted({c for _, c, _, _ in self.windows}))
        self._size = self.windows[0][2:]  # every window has the same size (min(window, side))
        self.reach = model.spec.click_encoder().reach
        self.channels = np.zeros((model.spec.n_annotation_channels, height, width), np.float32)
        self.clicks: list[Click] = []
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()  # window index -> softmax, least recent first
        self._cached_bytes = 0
        self.inferred = 0  # forward passes so far (what locality saves)
        # (r0, r1, c0, c1) boxes whose probabilities the last update / refresh rewrote: all a caller
        # keeping maps derived from ``probs`` (uncertainty, a confusion matrix) must look at
        self.recomputed: list[tuple[int, int, int, int]] = []
        self.probs = np.zeros((model.spec.n_classes, height, width), np.float32)
        self.prediction = np.zeros((height, width), np.intp)
        if requested > 1 and self._batches_exactly(min(requested, len(self.windows))):
            self.batch = requested
        self._full_pass()

    # ------------------------------------------------------------------ public
    def update(self, clicks: Sequence[Click], encode: EncodeFn) -> int:
        """Re-predict for ``clicks`` (all of them, image coordinates) with the current weights; returns
        the number of windows inferred."""
        before = self.inferred
        self.recomputed = []
        regions = self._set_clicks(clicks, encode)
        fresh: dict[int, np.ndarray] = {}
        groups = []
        for (r0, c0), changed in regions:
            stale = [i for i in self._windows_in(r0, r0 + changed.shape[0], c0, c0 + changed.shape[1])
                     if self._touches(i, r0, c0, changed)]
            groups.append(stale)
        for index, softmax in self._infer_all(sorted({i for stale in groups for i in stale})):
            fresh[index] = softmax
            self._store(index, softmax)
        for stale in groups:
            if stale:
                self._recompute(self._bbox(stale), fresh)
        return self.inferred - before

    def refresh(self, clicks: Sequence[Click], encode: EncodeFn) -> int:
        """Re-predict everything for ``clicks``: the weights changed (DISCA), every window is stale."""
        before = self.inferred
        self._set_clicks(clicks, encode)
        self._full_pass()
        return self.inferred - before

    # ------------------------------------------------------------------ channels
    def _set_clicks(self, clicks: Sequence[Click], encode: EncodeFn) -> list[tuple[tuple[int, int], np.ndarray]]:
        """Re-encode around every added or removed click; ((row, col) origin, changed-pixel mask) per region."""
        old, new = Counter(self.clicks), Counter(clicks)
        moved = list(dict.fromkeys([*(new - old), *(old - new)]))
        self.clicks = list(clicks)
        height, width = self.image.shape[:2]
        margin = 2 * self.reach + 1  # clicks reaching the region, and their C-PM window / guided-filter span
        regions = []
        for k in moved:
            r0, r1 = max(0, k.row - self.reach), min(height, k.row + self.reach + 1)
            c0, c1 = max(0, k.col - self.reach), min(width, k.col + self.reach + 1)
            if r0 >= r1 or c0 >= c1:
                continue  # outside the image: encodings ignore it
            cr0, cr1 = max(0, r0 - margin), min(height, r1 + margin)
            cc0, cc1 = max(0, c0 - margin), min(width, c1 + margin)
            inside = [q for q in self.clicks if cr0 <= q.row < cr1 and cc0 <= q.col < cc1]
            local = encode(inside, (cr0, cc0, cr1 - cr0, cc1 - cc0))[:, r0 - cr0 : r1 - cr0, c0 - cc0 : c1 - cc0]
            stored = self.channels[:, r0:r1, c0:c1]
            changed = (local != stored).any(axis=0)
            stored[...] = local
            regions.append(((r0, c0), changed))
        return regions

    # ------------------------------------------------------------------ windows
    def _windows_in(self, r0: int, r1: int, c0: int, c1: int) -> list[int]:
        """Indices (tile order) of the windows intersecting rows [r0, r1) × cols [c0, c1)."""
        rows, cols = _span(self._rows, self._size[0], r0, r1), _span(self._cols, self._size[1], c0, c1)
        return [int(i * len(self._cols) + j) for i in rows for j in cols]

    def _touches(self, index: int, r0: int, c0: int, changed: np.ndarray) -> bool:
        r, c, h, w = self.windows[index]
        return bool(changed[max(0, r - r0) : max(0, r + h - r0), max(0, c - c0) : max(0, c + w - c0)].any())

    def _bbox(self, indices: Sequence[int]) -> tuple[int, int, int, int]:
        boxes = np.array([self.windows[i] for i in indices])
        return (int(boxes[:, 0].min()), int((boxes[:, 0] + boxes[:, 2]).max()),
                int(boxes[:, 1].min()), int((boxes[:, 1] + boxes[:, 3]).max()))

    def _infer(self, index: int) -> np.ndarray:
        """Softmax (N, h, w) of one window from the current channels, as :func:`predict_probs` computes it."""
        return next(self._infer_all([index]))[1]

    def _batches_exactly(self, size: int) -> bool:
        """Whether ``size`` windows inferred together give bit for bit what each gives alone."""
        if size < 2:
            return False
        indices = list(range(size))
        self.batch = 1
        alone = [softmax for _, softmax in self._infer_all(indices)]
        self.batch = size
        together = [softmax for _, softmax in self._infer_all(indices)]
        self.batch, self.inferred = 1, 0
        return all(np.array_equal(a, b) for a, b in zip(alone, together))

    @torch.no_grad()
    def _infer_all(self, indices: Sequence[int]):
        """(index, softmax (N, h, w)) of each window, ``self.batch`` windows per forward pass."""
        self.model.eval()
        device = next(self.model.parameters()).device
        n = self.channels.shape[0]
        for start in range(0, len(indices), self.batch):
            chunk = indices[start : start + self.batch]
            x = torch.stack([network_input(self.image[r : r + h, c : c + w], self.channels[:, r : r + h, c : c + w], n)
                             for r, c, h, w in (self.windows[i] for i in chunk)]).to(device)
            logits = forward_windows(self.model, x)
            self.inferred += len(chunk)
            for index, window_logits in zip(chunk, logits):
                yield index, torch.softmax(window_logits, dim=0).cpu().numpy()

    def _softmax(self, index: int, fresh: dict[int, np.ndarray]) -> np.ndarray:
        if index in fresh:
            return fresh[index]
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        fresh[index] = self._infer(index)  # not cached (cap): infer on demand, once per update
        self._store(index, fresh[index])
        return fresh[index]

    def _store(self, index: int, softmax: np.ndarray) -> None:
        """Keep ``softmax`` under the byte cap, evicting the least recently used windows."""
        if index in self._cache:
            self._cached_bytes -= self._cache.pop(index).nbytes
        if softmax.nbytes > self.cache_bytes:
            return
        while self._cached_bytes + softmax.nbytes > self.cache_bytes:
            self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        self._cache[index] = softmax
        self._cached_bytes += softmax.nbytes

    # ------------------------------------------------------------------ probabilities
    def _recompute(self, box: tuple[int, int, int, int], fresh: dict[int, np.ndarray]) -> None:
        """Probabilities and argmax of rows [r0, r1) × cols [c0, c1) from every window covering them."""
        r0, r1, c0, c1 = box
        total = np.zeros((self.probs.shape[0], r1 - r0, c1 - c0), np.float32)
        count = np.zeros((r1 - r0, c1 - c0), np.float32)
        for index in self._windows_in(r0, r1, c0, c1):
            r, c, h, w = self.windows[index]
            a0, a1, b0, b1 = max(r0, r), min(r1, r + h), max(c0, c), min(c1, c + w)
            softmax = self._softmax(index, fresh)
            total[:, a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] += softmax[:, a0 - r : a1 - r, b0 - c : b1 - c]
            count[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] += 1
        total /= count
        self.recomputed.append(box)
        self.probs[:, r0:r1, c0:c1] = total
        self.prediction[r0:r1, c0:c1] = total.argmax(0)

    def _full_pass(self) -> None:
        """Every window inferred from the current channels; the cache refilled under its cap."""
        self._cache.clear()
        self._cached_bytes = 0
        self.probs[...] = 0
        count = np.zeros(self.probs.shape[1:], np.float32)
        for index, softmax in self._infer_all(range(len(self.windows))):
            r, c, h, w = self.windows[index]
            self.probs[:, r : r + h, c : c + w] += softmax
            count[r : r + h, c : c + w] += 1
            self._store(index, softmax)
        self.probs /= count
        self.prediction[...] = self.probs.argmax(0)
        self.recomputed = [(0, self.probs.shape[1], 0, self.probs.shape[2])]
