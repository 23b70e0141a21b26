"""An imprecise user, for robustness curves: another user's click, moved and sometimes mislabelled.

Options: ``base`` (the wrapped user, default ``largest_mistake_centre``; its own options are read
from the same mapping), ``sigma`` (px, standard deviation of a Gaussian position jitter, rounded
and clipped into the image; default 0) and ``wrong_class_rate`` (probability that the click
carries a class drawn uniformly among the other classes; default 0). Without a wrong class the
click carries the ground-truth class at its (moved) pixel; a move onto an ignored pixel keeps the
class the base user meant.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dial_core.clicks.agents.base import AGENTS, AgentContext, register
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError


@register("noisy")
def noisy(context: AgentContext) -> Click | None:
    options = context.options
    base = options.get("base", "largest_mistake_centre")
    if base == "noisy" or base not in AGENTS:
        raise ConfigError(f"evaluation.agent_options.base {base!r}: choose a user other than noisy: "
                          f"{', '.join(n for n in AGENTS if n != 'noisy')}")
    inner = dataclasses.replace(context, memory=context.memory.setdefault("base", {}))
    click = AGENTS[base](inner)
    if click is None:
        return None
    sigma = float(options.get("sigma", 0.0))
    rate = float(options.get("wrong_class_rate", 0.0))
    rng, label = context.rng, context.label
    row, col, cls = click.row, click.col, click.cls
    if sigma > 0:
        dr, dc = np.rint(rng.normal(0.0, sigma, 2)).astype(int)
        row = int(np.clip(row + dr, 0, label.shape[0] - 1))
        col = int(np.clip(col + dc, 0, label.shape[1] - 1))
        if label[row, col] != context.ignore_index:
            cls = int(label[row, col])
    n_classes = context.classes
    if rate > 0 and n_classes > 1 and rng.random() < rate:
        others = [k for k in range(n_classes) if k != cls]
        cls = int(others[rng.integers(len(others))])
    return Click(row, col, cls)
