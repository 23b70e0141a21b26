"""The click protocol for ALCD (DIAL Fig. 5's random-forest baseline).

The same simulated user, the same budget and the same rows as :func:`click_protocol`, so ALCD's
table sits beside the networks' ones; what changes is the corrector: after each click the forest is
refit on its pre-training samples plus every click so far (one sample per click, the clicked pixel's
features and class: DIAL "adapts the classifier with the same number of annotations") and the whole
image is re-predicted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from dial_core.active.acquisition import entropy_map
from dial_core.clicks.agents import AgentContext, needs_uncertainty, next_click
from dial_core.clicks.types import Click
from dial_core.evaluation.protocols import _row
from dial_core.interactive.alcd import AlcdConfig, fit_forest, pixel_features, predict_proba_map, with_clicks

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier


def alcd_click_protocol(
    X: np.ndarray,
    y: np.ndarray,
    cfg: AlcdConfig,
    image: np.ndarray,
    label: np.ndarray,
    class_names: Sequence[str],
    n_clicks: int,
    agent: str,
    agent_options: Mapping,
    rng: np.random.Generator,
    image_id: str = "",
    recorded: Sequence[Click] | None = None,
    forest: RandomForestClassifier | None = None,
) -> list[dict]:
    """K agent clicks on one image, the forest refit after each; rows as :func:`click_protocol`'s.

    ``X``, ``y``: the pre-training samples (:func:`sample_training_pixels`); ``forest``: the forest
    already fitted on them with ``cfg`` (fitted here when None; the evaluation fits it once for all
    images). ``rng`` only feeds the simulated user (the forest's randomness is ``cfg.seed``).

    Cost: each click refits the whole forest on ``len(X) + clicks`` samples and re-predicts every
    pixel, so a click costs one pre-training (about linear in the samples × trees × log samples) plus
    one whole-image prediction — seconds at the demo scale (2 000 samples per image, 50 trees),
    minutes at DIAL's 100 000 per image. A row's ``seconds`` include both.
    """
    start = time.perf_counter()
    n = len(class_names)
    features = pixel_features(image, cfg.scales)
    if features.shape[2] != X.shape[1]:
        raise ValueError(f"ALCD: the samples have {X.shape[1]} features but scales {cfg.scales} give {features.shape[2]}")
    forest = fit_forest(X, y, cfg) if forest is None else forest
    probs = predict_proba_map(forest, features, n)
    prediction = probs.argmax(0)
    rows = [_row(0, label, prediction, class_names, None, time.perf_counter() - start, None)]
    correct0 = rows[0]["correct_pixels"]
    clicks: list[Click] = []
    agent_rng, memory = rng.spawn(1)[0], {}  # as click_protocol: the same user stream for the same seed
    for step in range(1, n_clicks + 1):
        start = time.perf_counter()
        uncertainty = entropy_map(probs) if needs_uncertainty(agent, agent_options) else None
        click = next_click(agent, AgentContext(
            label, prediction, tuple(clicks), agent_rng, uncertainty, image_id=image_id, options=agent_options,
            step=step, budget=n_clicks, n_classes=n, recorded=recorded, memory=memory))
        if click is not None:
            clicks.append(click)
            forest = fit_forest(*with_clicks(X, y, features, clicks), cfg)
            probs = predict_proba_map(forest, features, n)
            prediction = probs.argmax(0)
        rows.append(_row(step, label, prediction, class_names, correct0, time.perf_counter() - start, click))
    return rows
