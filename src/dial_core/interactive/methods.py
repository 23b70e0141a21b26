"""Interactive methods of the click and patch protocols: AC, DISCA and the ablation arms of DIAL Fig. 5.

Every method is one point of the same design space: are the annotation channels fed to the network
(AC), are the weights trained on the clicked pixels (WTP, "What's the Point"), and does that training
hold the prediction near p0 with Eq. 1's L1 term. DISCA is all three; the arms switch parts off:

- ``ac``: channels only, no training (DISIR);
- ``wtp``: cross-entropy on the clicked pixels, no channels (neither in the steps nor at
  inference), no regulariser;
- ``ac_wtp``: channels on, the same training without the regulariser;
- ``wtp_reg``: no channels, the training with the regulariser;
- ``disca`` / ``disca_l10``: channels, training and regulariser, λ from ``evaluation.disca`` /
  ``evaluation.arms.disca_l10`` (10 by default): DIAL tests λ = 1 and λ = 10 side by side.

Each adapting arm takes its settings from ``evaluation.disca`` with its own overrides from
``evaluation.arms.<name>`` (a learning rate, steps, λ ...), and its learning rate is calibrated like
DISCA's unless a number fixes it. A new arm is one registry line here (and its name in the params
schema; a test checks they agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no torch import at run time: the Snakefile reads this registry
    from dial_core.interactive.disca import DiscaConfig


@dataclass(frozen=True)
class Method:
    """How a method uses the clicks."""

    adapts: bool  # SGD steps on the clicked pixels after each click
    channels: bool  # annotation channels fed to the network (at inference and in the steps)
    regularised: bool  # Eq. 1's L1 term to p0 in the steps (off: λ = 0)
    description: str

    def adaptation(self, cfg: DiscaConfig) -> DiscaConfig:
        """``cfg`` with the parts this method switches off: no regulariser (λ = 0), no channels in
        the steps (dropped at every step)."""
        return replace(cfg, regularisation=cfg.regularisation if self.regularised else 0.0,
                       ac_drop_probability=cfg.ac_drop_probability if self.channels else 1.0)


METHODS: dict[str, Method] = {
    "ac": Method(False, True, False, "annotations as input channels (DISIR)"),
    "wtp": Method(True, False, False, "cross-entropy on the clicked pixels only (What's the Point)"),
    "ac_wtp": Method(True, True, False, "AC channels and WTP training, no regulariser"),
    "wtp_reg": Method(True, False, True, "WTP training with Eq. 1's L1 to p0, no channels"),
    "disca": Method(True, True, True, "AC + WTP + L1 to p0 (DIAL Eq. 1)"),
    "disca_l10": Method(True, True, True, "DISCA with λ from evaluation.arms.disca_l10 (10)"),
}


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown interactive method {name!r}; choose one of {', '.join(METHODS)}") from None


def adapting(names: Iterable[str]) -> list[str]:
    """The methods among ``names`` that train the weights (those whose lr is calibrated)."""
    return [n for n in names if method(n).adapts]


def adaptation_settings(evaluation: Mapping, name: str) -> dict:
    """``evaluation.disca`` with the method's own overrides from ``evaluation.arms.<name>``."""
    return {**evaluation["disca"], **((evaluation.get("arms") or {}).get(name) or {})}
