"""A person's recorded clicks, replayed (DISIR's manual evaluation).

The clicks come in ``context.recorded`` (image coordinates), read and checked by
:func:`dial_core.clicks.click_log.read_click_log` in the step that loads the files; the user does
no file I/O. In the click protocol the k-th click is the k-th recorded point, and the user has
nothing more to say (None) once the recording runs out. In the patch protocol (``context.window``
set) each visited patch gets the first recorded click inside it that was not replayed yet.
"""

from __future__ import annotations

from dial_core.clicks.agents.base import AgentContext, register
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError


@register("human")
def human(context: AgentContext) -> Click | None:
    if context.recorded is None:
        raise ConfigError(f"evaluation.agent 'human': no recorded clicks for image {context.image_id!r} "
                          "(evaluation.agent_options.clicks names the folder of <image_id>.geojson files)")
    if context.window is None:
        return context.recorded[context.step - 1] if context.step <= len(context.recorded) else None
    r, c, h, w = context.window
    placed = set(context.clicks)
    for click in context.recorded:
        local = click.shifted(r, c)
        if 0 <= local.row < h and 0 <= local.col < w and local not in placed:
            return local
    return None
