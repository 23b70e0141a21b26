"""The RITM study's experiments and how params name them; no torch here, so the Snakefile can read
them while it plans the DAG (the steps themselves: :mod:`dial_core.ritm_steps`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dial_core.errors import ConfigError

RITM_MODEL = "ritm"  # the ``model`` column of the RITM rows


@dataclass(frozen=True)
class Experiment:
    """One row of Table 1: how its RITM model is obtained."""

    title: str  # the report's name
    trains: bool  # trained on the binary dataset
    from_source: bool  # starts from (or is) the source model
    interactive: bool  # reads clicks


EXPERIMENTS: dict[str, Experiment] = {
    "no_training": Experiment("No training", trains=False, from_source=True, interactive=True),
    "from_scratch": Experiment("Training from scratch", trains=True, from_source=False, interactive=True),
    "finetuning": Experiment("Finetuning", trains=True, from_source=True, interactive=True),
    "not_interactive": Experiment("Not interactive", trains=True, from_source=False, interactive=False),
}


def experiments(ritm: Mapping) -> list[str]:
    """The experiments ``ritm.experiments`` asks for, in :data:`EXPERIMENTS` order."""
    asked = list(ritm.get("experiments") or [])
    unknown = [e for e in asked if e not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"ritm.experiments: unknown {', '.join(map(repr, unknown))}; choose among {', '.join(EXPERIMENTS)}")
    if not asked:
        raise ConfigError(f"ritm.experiments is empty; list at least one of {', '.join(EXPERIMENTS)}")
    return [e for e in EXPERIMENTS if e in asked]


def needs_source(ritm: Mapping) -> bool:
    """Whether the run trains a model on ``ritm.source`` (finetuning, or no_training without a checkpoint)."""
    chosen = experiments(ritm)
    return "finetuning" in chosen or ("no_training" in chosen and not ritm.get("checkpoint"))


def experiment_label(model: str, experiment: str) -> str:
    """How a (model, experiment) is named in Table 1 and the figures."""
    if model == RITM_MODEL:
        return f"RITM {EXPERIMENTS[experiment].title}" if experiment in EXPERIMENTS else f"RITM {experiment}"
    return f"{experiment.upper()} ({model})"
