"""One person annotating one image with one network: the state behind ``dial serve``.

The prediction is AC's (DISIR) and is kept current click after click by a
:class:`~dial_core.interactive.local_prediction.ClickPredictor`, which re-infers only the windows a
click touches and equals whole-image inference bit for bit, so the map after any sequence of clicks,
undos and redos is ``refine(..., "ac")`` of the clicks that remain.

DISCA (the button) adapts a copy of the *original* network on every current click, exactly as
``refine(..., "disca")`` does (:func:`~dial_core.interactive.refine.adapted_copy`), and then
re-predicts everything; later clicks are AC updates on the adapted weights (still exact: the map is
``refine(..., "disca")`` of the adapted-on clicks, re-predicted with the channels of all clicks).
An undo that removes a click DISCA was adapted on returns to the original weights and re-predicts
everything; a redo does not re-adapt (press DISCA again).

What the page shows is derived from the probabilities inside the boxes each update rewrote
(``ClickPredictor.recomputed``): the class map, the uncertainty map (an acquisition of the current
softmax), the confusion matrix against a label raster (live mIoU) and the box of pixels whose class
changed. Nothing is recomputed over the whole image after a click.

With a state folder the session writes ``session.json`` and ``clicks.geojson`` (the ``human``
agent's click log) atomically after every change, and a new session on the same folder, image and
network replays them; a folder made for another image or network is a ConfigError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dial_core.active.acquisition import ACQUISITIONS, AcquisitionConfig
from dial_core.app.classes import ClassTable
from dial_core.app.guidance import Suggestion, suggest_patches
from dial_core.app.raster import GeoImage
from dial_core.atomic import write_json
from dial_core.clicks.click_log import click_log, write_click_log
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError, DataError, InvalidRequest, StateConflict
from dial_core.evaluation.metrics import confusion_matrix, iou_per_class
from dial_core.interactive.disca import DiscaConfig
from dial_core.interactive.local_prediction import ClickPredictor, crop_encoder
from dial_core.interactive.refine import adapted_copy, check_refinable
from dial_core.models.segmenter import Segmenter

log = logging.getLogger("dial.cli")
STATE_FORMAT = 1
STATE_FILE, CLICKS_FILE = "session.json", "clicks.geojson"
IGNORE = 255  # unlabelled pixels of a label raster
# acquisitions computed from the current softmax alone (the others need extra forward passes per window)
SOFTMAX_ACQUISITIONS = tuple(name for name, a in ACQUISITIONS.items() if a.needs == "softmax")
Box = tuple[int, int, int, int]  # (r0, r1, c0, c1), ends excluded


@dataclass(frozen=True)
class SessionConfig:
    """Tiling of the inference, guidance and DISCA's settings (None: no learning rate, no DISCA)."""

    window: int = 512
    overlap: int = 128
    acquisition: str = "entropy"
    patch_size: int = 512
    disca: DiscaConfig | None = None
    disca_window: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.acquisition not in SOFTMAX_ACQUISITIONS:
            raise ConfigError(f"--acquisition {self.acquisition}: the page's heat map needs a map of the current "
                              f"softmax; choose one of {', '.join(SOFTMAX_ACQUISITIONS)}")


@dataclass(frozen=True)
class Update:
    """What one change did: the box (r0, c0, r1, c1; ends excluded) of the pixels whose class
    changed (None: none did), their count, its seconds and the windows re-inferred."""

    changed: tuple[int, int, int, int] | None
    changed_pixels: int
    seconds: float
    windows: int


@dataclass
class _Stacks:
    clicks: list[Click] = field(default_factory=list)
    redo: list[Click] = field(default_factory=list)  # undone clicks, the next redo last
    disca_clicks: int | None = None  # how many of the first clicks the current weights were adapted on
    version: int = 0


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the network's weights (names, shapes and values): which network a state was made with."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def image_fingerprint(pixels: np.ndarray) -> str:
    """SHA-256 of the pixels: which image a state was made for (a renamed file is the same image)."""
    return hashlib.sha256(np.ascontiguousarray(pixels).data).hexdigest()


class AnnotationSession:
    """Clicks, undo / redo, DISCA, live scores and guidance over one image; thread-safe (one lock)."""

    def __init__(self, image: GeoImage, model: Segmenter, table: ClassTable, config: SessionConfig = SessionConfig(),
                 label: np.ndarray | None = None, state_dir: str | Path | None = None):
        check_refinable(model)
        self.image, self.model, self.table, self.config = image, model.eval(), table, config
        self.n_classes = model.spec.n_classes
        if label is not None and label.shape != image.shape:
            raise DataError(f"the label raster is {label.shape[0]}×{label.shape[1]} px but the image "
                            f"{image.path.name} is {image.shape[0]}×{image.shape[1]}")
        self.label = label
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.lock = threading.RLock()
        self._identity = {"image": {"name": image.path.name, "height": image.shape[0], "width": image.shape[1],
                                    "sha256": image_fingerprint(image.pixels)},
                          "model": {"spec": asdict(model.spec), "sha256": model_fingerprint(model)}}
        saved = self._load_state()
        started = time.perf_counter()
        self.predictor = ClickPredictor(model, image.pixels, config.window, config.overlap, batch=None)
        # what refine() computes before any click: DISCA's p0 (only kept when DISCA can run) and C-PM's regions
        self._initial = self.predictor.probs.copy() if config.disca is not None else None
        encoder = model.spec.click_encoder()
        initial_classes = self.predictor.prediction.copy() if encoder.needs_prediction else None
        self._encode = crop_encoder(encoder, image.pixels, prediction=initial_classes)
        self.classes = self.predictor.prediction.astype(np.uint8)
        self.uncertainty = np.zeros(image.shape, np.float32)
        self._uncertainty_in((0, image.shape[0], 0, image.shape[1]))
        self.confusion = None if label is None else confusion_matrix(label, self.classes, self.n_classes, IGNORE)
        self.stacks = _Stacks()
        self.startup_seconds = time.perf_counter() - started
        self.last_seconds: float | None = None
        if saved is not None:
            self._replay(saved)

    # ------------------------------------------------------------------ the requests
    def add_click(self, row: Any, col: Any, cls: Any) -> Update:
        """AC after one more click; the redo stack is cleared (a new branch of the history)."""
        click = self._checked(row, col, cls)
        with self.lock:
            started = time.perf_counter()
            self.stacks.clicks.append(click)
            self.stacks.redo.clear()
            windows = self.predictor.update(self.stacks.clicks, self._encode)
            return self._finish(started, windows)

    def undo(self) -> Update:
        with self.lock:
            if not self.stacks.clicks:
                raise StateConflict("nothing to undo: there are no clicks")
            started = time.perf_counter()
            self.stacks.redo.append(self.stacks.clicks.pop())
            if self.stacks.disca_clicks is not None and len(self.stacks.clicks) < self.stacks.disca_clicks:
                # the weights were adapted on the click just removed: back to the original network
                self.stacks.disca_clicks = None
                self.predictor.model = self.model
                windows = self.predictor.refresh(self.stacks.clicks, self._encode)
            else:
                windows = self.predictor.update(self.stacks.clicks, self._encode)
            return self._finish(started, windows)

    def redo(self) -> Update:
        with self.lock:
            if not self.stacks.redo:
                raise StateConflict("nothing to redo: no click was undone since the last new click")
            started = time.perf_counter()
            self.stacks.clicks.append(self.stacks.redo.pop())
            windows = self.predictor.update(self.stacks.clicks, self._encode)
            return self._finish(started, windows)

    def apply_disca(self) -> Update:
        """DISCA on every current click (a copy of the original network), then everything re-predicted."""
        with self.lock:
            if self.config.disca is None:
                raise StateConflict("DISCA needs a learning rate: restart dial serve with --lr (DIAL's 2e-6) or "
                                    "--calibration reports/metrics/calibration/<dataset>/<dataset>/<network>/disca.json")
            if not self.stacks.clicks:
                raise StateConflict("DISCA adapts the network to the clicks: click first")
            started = time.perf_counter()
            windows = self._adapt(len(self.stacks.clicks))
            return self._finish(started, windows)

    def suggestions(self, count: int) -> list[Suggestion]:
        """The ``count`` most uncertain patches of the current prediction (DIAL's guidance)."""
        with self.lock:
            return suggest_patches(self.uncertainty, self.image.shape, self.config.patch_size, count)

    # ------------------------------------------------------------------ what the page reads
    @property
    def version(self) -> int:
        return self.stacks.version

    @property
    def uncertainty_scale(self) -> float:
        """The largest value of the uncertainty map (entropy: log N), for the heat map's colours."""
        n = self.n_classes
        return {"entropy": math.log(n), "least_confidence": 1 - 1 / n}.get(self.config.acquisition, 1.0)

    def scores(self) -> tuple[float | None, list[float | None] | None]:
        """mIoU and per-class IoU against the label raster (None without one)."""
        if self.confusion is None:
            return None, None
        iou = iou_per_class(self.confusion)
        miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else None
        return miou, [None if np.isnan(v) else float(v) for v in iou]

    def state(self) -> dict:
        """The page's view of the session (``GET /api/state``)."""
        with self.lock:
            miou, iou = self.scores()
            disca = self.stacks.disca_clicks
            return {"version": self.stacks.version,
                    "clicks": [{"row": k.row, "col": k.col, "class": k.cls} for k in self.stacks.clicks],
                    "can_undo": bool(self.stacks.clicks), "can_redo": bool(self.stacks.redo),
                    "disca": {"applied": disca is not None, "clicks": disca or 0},
                    "miou": miou, "iou": iou, "last_seconds": self.last_seconds}

    def click_log(self) -> dict:
        """The clicks as the ``human`` agent's click log (map coordinates when the image has a CRS)."""
        with self.lock:
            return click_log(self.stacks.clicks, self.image.transform, self.image.crs)

    # ------------------------------------------------------------------ internals
    def _checked(self, row: Any, col: Any, cls: Any) -> Click:
        for name, value in (("row", row), ("col", col), ("class", cls)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InvalidRequest(f"{name} must be an integer, got {value!r:.40}")
        height, width = self.image.shape
        if not (0 <= row < height and 0 <= col < width):
            raise InvalidRequest(f"click (row {row}, col {col}) lies outside the image ({height}×{width} px: rows "
                                 f"0..{height - 1}, cols 0..{width - 1})")
        if not 0 <= cls < self.n_classes:
            raise InvalidRequest(f"unknown class {cls}; the classes are {self.table.describe()}")
        return Click(int(row), int(col), int(cls))

    def _adapt(self, k: int) -> int:
        """The original network adapted on the first ``k`` clicks (``refine``'s code path), then a full pass."""
        cfg = self.config
        self.predictor.model = adapted_copy(self.model, self.image.pixels, self.stacks.clicks[:k], "disca", cfg.disca,
                                            self._initial, cfg.window, cfg.overlap, cfg.disca_window, cfg.seed)
        self.stacks.disca_clicks = k
        return self.predictor.refresh(self.stacks.clicks, self._encode)

    def _finish(self, started: float, windows: int) -> Update:
        """Derived maps inside the rewritten boxes, the version bumped, the state saved."""
        changed, count = self._derive(self.predictor.recomputed)
        self.stacks.version += 1
        self._save()
        self.last_seconds = time.perf_counter() - started
        return Update(changed, count, self.last_seconds, windows)

    def _derive(self, boxes: Sequence[Box]) -> tuple[tuple[int, int, int, int] | None, int]:
        """Class map, confusion matrix and uncertainty updated in ``boxes``, one after the other (they
        may overlap: each compares with the map as the previous left it); the changed box and count."""
        lo, hi, count = [math.inf, math.inf], [-1, -1], 0
        for box in boxes:
            r0, r1, c0, c1 = box
            new = self.predictor.prediction[r0:r1, c0:c1].astype(np.uint8)
            old = self.classes[r0:r1, c0:c1]
            diff = new != old
            if diff.any():
                rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
                lo = [min(lo[0], r0 + rows[0]), min(lo[1], c0 + cols[0])]
                hi = [max(hi[0], r0 + rows[-1] + 1), max(hi[1], c0 + cols[-1] + 1)]
                count += int(diff.sum())
                if self.confusion is not None:
                    label = self.label[r0:r1, c0:c1]
                    self.confusion -= confusion_matrix(label[diff], old[diff], self.n_classes, IGNORE)
                    self.confusion += confusion_matrix(label[diff], new[diff], self.n_classes, IGNORE)
                old[...] = new
            self._uncertainty_in(box)
        changed = None if count == 0 else (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
        return changed, count

    def _uncertainty_in(self, box: Box) -> None:
        r0, r1, c0, c1 = box
        probs = torch.from_numpy(self.predictor.probs[:, r0:r1, c0:c1])
        pixel_map = ACQUISITIONS[self.config.acquisition].pixel_map
        self.uncertainty[r0:r1, c0:c1] = pixel_map(probs, AcquisitionConfig()).numpy()

    # ------------------------------------------------------------------ persistence
    def _document(self) -> dict:
        stacks = self.stacks
        disca = None if self.config.disca is None else asdict(self.config.disca)
        return {"format": STATE_FORMAT, **self._identity,
                "settings": {"window": self.config.window, "overlap": self.config.overlap, "disca": disca,
                             "disca_window": self.config.disca_window, "seed": self.config.seed},
                "version": stacks.version, "clicks": [[k.row, k.col, k.cls] for k in stacks.clicks],
                "redo": [[k.row, k.col, k.cls] for k in stacks.redo], "disca_clicks": stacks.disca_clicks}

    def _save(self) -> None:
        if self.state_dir is None:
            return
        write_json(self.state_dir / STATE_FILE, self._document())
        write_click_log(self.state_dir / CLICKS_FILE, self.stacks.clicks, self.image.transform, self.image.crs)

    def _load_state(self) -> dict | None:
        """The saved state of this image and network, None for a new folder; a ConfigError for a
        folder of another image or network, or a file that is not a session's."""
        if self.state_dir is None or not (self.state_dir / STATE_FILE).is_file():
            return None
        path = self.state_dir / STATE_FILE
        try:
            saved = json.loads(path.read_text())
            if saved.get("format") != STATE_FORMAT:
                raise ValueError(f"format {saved.get('format')!r}, expected {STATE_FORMAT}")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
            raise ConfigError(f"{path}: not a dial serve state ({err}); give another --state folder, or delete "
                              f"{self.state_dir} to start over") from None
        for what in ("image", "model"):
            mine, theirs = self._identity[what], saved.get(what) or {}
            if mine.get("sha256") != theirs.get("sha256"):
                made_for = theirs.get("name", "another network") if what == "image" else "another network"
                raise ConfigError(f"the state folder {self.state_dir} holds the clicks made on {made_for} "
                                  f"({what} fingerprint {str(theirs.get('sha256'))[:12]}…, this {what}'s is "
                                  f"{mine['sha256'][:12]}…); give another --state folder for this {what}, or "
                                  f"delete {self.state_dir} to start over")
        return saved

    def _replay(self, saved: dict) -> None:
        """The saved clicks (AC, exact in one update), DISCA's adaptation when it was applied, the stacks."""
        try:
            clicks = [self._checked(*k) for k in saved["clicks"]]
            redo = [self._checked(*k) for k in saved["redo"]]
            disca_clicks = saved["disca_clicks"]
            settings = saved["settings"]
        except (KeyError, TypeError, InvalidRequest) as err:
            raise ConfigError(f"{self.state_dir / STATE_FILE}: unreadable clicks ({err}); delete {self.state_dir} "
                              "to start over") from None
        with self.lock:
            self.stacks = _Stacks(clicks, redo, None, int(saved.get("version", 0)))
            started = time.perf_counter()
            windows = self.predictor.update(clicks, self._encode)
            if disca_clicks:
                if settings.get("disca") is None:
                    raise ConfigError(f"{self.state_dir / STATE_FILE}: DISCA was applied but its settings are missing; "
                                      f"delete {self.state_dir} to start over")
                # the settings it was adapted with, so a restart gives the map the person saw
                self.config = replace(self.config, disca=DiscaConfig(**settings["disca"]),
                                      disca_window=settings["disca_window"], seed=settings["seed"])
                if self._initial is None:
                    self._initial = self._initial_probs()
                windows += self._adapt(int(disca_clicks))
            self._derive(self.predictor.recomputed)
            self.last_seconds = time.perf_counter() - started
            log.info("replayed %d clicks%s from %s in %.1f s (%d windows)", len(clicks),
                     f", DISCA on {disca_clicks}" if disca_clicks else "", self.state_dir, self.last_seconds, windows)

    def _initial_probs(self) -> np.ndarray:
        from dial_core.interactive.inference import predict_probs

        return predict_probs(self.model, self.image.pixels, None, self.config.window, self.config.overlap)[0]
