"""Users that click a random pixel (DIAL Appendix B): anywhere in the mistakes, or among the most
uncertain pixels, with or without knowing where the mistakes are, or anywhere at all (Fig. 12's
baseline without any prior). Each click carries the
ground-truth class of its pixel; pixels already clicked are not drawn again."""

from __future__ import annotations

import numpy as np

from dial_core.clicks.agents.base import AgentContext, click_at, mistake_mask, random_pixel, register, remove_clicked
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError

TOP_QUANTILE = 0.9  # DIAL App. B: the top decile ("9th quantile") of the uncertainty


def _uncertainty(context: AgentContext, name: str) -> np.ndarray:
    if context.uncertainty is None:
        raise ConfigError(f"evaluation.agent {name!r} needs an uncertainty map; the protocol gave none")
    if context.uncertainty.shape != context.label.shape:
        raise ConfigError(f"evaluation.agent {name!r}: uncertainty map {context.uncertainty.shape} ≠ label {context.label.shape}")
    return context.uncertainty


def top_decile(uncertainty: np.ndarray, within: np.ndarray, quantile: float = TOP_QUANTILE) -> np.ndarray:
    """Pixels of ``within`` whose uncertainty is at least the ``quantile`` of its values there."""
    if not within.any():
        return within
    threshold = np.quantile(uncertainty[within], quantile)
    return within & (uncertainty >= threshold)


@register("random_in_mistake")
def random_in_mistake(context: AgentContext) -> Click | None:
    """A uniformly random pixel among the mistakes."""
    errors = remove_clicked(mistake_mask(context.label, context.prediction, context.ignore_index), context.clicks)
    return click_at(context.label, random_pixel(errors, context.rng))


@register("uncertain_in_mistake", uncertainty=True)
def uncertain_in_mistake(context: AgentContext) -> Click | None:
    """A random pixel among the top decile of the uncertainty inside the mistakes."""
    uncertainty = _uncertainty(context, "uncertain_in_mistake")
    errors = remove_clicked(mistake_mask(context.label, context.prediction, context.ignore_index), context.clicks)
    quantile = float(context.options.get("quantile", TOP_QUANTILE))
    return click_at(context.label, random_pixel(top_decile(uncertainty, errors, quantile), context.rng))


@register("uncertain_anywhere", uncertainty=True)
def uncertain_anywhere(context: AgentContext) -> Click | None:
    """A random pixel among the top decile of the uncertainty over the labelled pixels, without
    knowing where the mistakes are (the click may land on a correct pixel; it still carries the
    ground-truth class, which the user knows by looking)."""
    uncertainty = _uncertainty(context, "uncertain_anywhere")
    labelled = remove_clicked(context.label != context.ignore_index, context.clicks)
    quantile = float(context.options.get("quantile", TOP_QUANTILE))
    return click_at(context.label, random_pixel(top_decile(uncertainty, labelled, quantile), context.rng))


@register("random_anywhere")
def random_anywhere(context: AgentContext) -> Click | None:
    """A uniformly random labelled pixel, knowing neither the mistakes nor the uncertainty (DIAL
    Fig. 12's "random" baseline): the click may land on a correct pixel, where it only confirms the
    prediction. It carries the ground-truth class; ignore pixels are never drawn."""
    labelled = remove_clicked(context.label != context.ignore_index, context.clicks)
    return click_at(context.label, random_pixel(labelled, context.rng))
