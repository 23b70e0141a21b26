"""Simulated users: where the next click goes. One registry, ``AGENTS``: name → function taking
one :class:`AgentContext` (label, prediction, clicks so far, a seeded generator, optional
uncertainty map, options …) and returning a :class:`~dial_core.clicks.types.Click` or None (nothing
to click). A new user is one function decorated with :func:`register` in a module imported below;
``evaluation.agent`` in the params schema lists the same names (a test checks they agree).

- ``largest_mistake_centre`` (DIAL "max"), ``largest_mistake_border`` — :mod:`.largest_mistake`
- ``disir`` (random one of the 8 largest errors, optionally class-dependent) — :mod:`.disir`
- ``random_in_mistake``, ``uncertain_in_mistake``, ``uncertain_anywhere``, ``random_anywhere`` (DIAL App. B,
  Figs. 11-12) — :mod:`.sampled`
- ``noisy`` (jitter and wrong classes around another user) — :mod:`.noisy`
- ``human`` (a person's recorded clicks) — :mod:`.human`
- ``ritm`` (RITM's binary clicker: deepest point of the deeper of FN / FP; buildings only) — :mod:`.ritm`
"""

from __future__ import annotations

from dial_core.clicks.agents import disir, human, largest_mistake, noisy, ritm, sampled  # noqa: F401 (registers)
from dial_core.clicks.agents.base import AGENTS, AgentContext, mistake_mask, needs_recorded, needs_uncertainty, register
from dial_core.clicks.agents.largest_mistake import largest_mistake_click
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError

# A network learns the clicks it was trained with: evaluating it with the interior user would
# measure a mismatch, not the strategy (DISIR Fig. 6). training click_position → agent → agent.
TRAINED_AGENTS: dict[str, dict[str, str]] = {
    "border": {"largest_mistake_centre": "largest_mistake_border"},
}


def agent_for_network(agent: str, click_position: str | None) -> str:
    """The user that evaluates a network trained with ``click_position`` clicks: the configured one,
    or its counterpart that clicks the way the network was trained (border networks)."""
    return TRAINED_AGENTS.get(click_position or "inside", {}).get(agent, agent)


def next_click(agent: str, context: AgentContext) -> Click | None:
    """The click of the user named ``agent`` (``evaluation.agent``) in ``context``."""
    try:
        user = AGENTS[agent]
    except KeyError:
        raise ConfigError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}") from None
    return user(context)


__all__ = ["AGENTS", "TRAINED_AGENTS", "AgentContext", "agent_for_network", "largest_mistake_click",
           "mistake_mask", "needs_recorded", "needs_uncertainty", "next_click", "register"]
