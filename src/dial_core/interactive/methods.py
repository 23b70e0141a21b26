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
  ``evaluation.arms.disca_l10`` (10 by default): DIAL tests λ = 1 and λ = 10 side by side;
- ``festa``: no channels, the training with FESTA's feature regulariser instead of the L1 to p0
  (Hua et al. 2022, :mod:`dial_core.interactive.festa`; its weight and constants from
  ``evaluation.arms.festa``);
- ``alcd``: not a network method: a random forest on per-pixel colour and texture features,
  pre-trained on sampled training pixels and refit with every click (Baetens et al. 2019 as DIAL
  runs it, :mod:`dial_core.interactive.alcd`). Its ``family`` is ``forest``: the workflow
  dispatches on it (:func:`of_family`) and the network configs refuse it.

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


REGULARISERS = ("none", "l1", "festa")  # what holds the adapted network back: nothing, Eq. 1's L1 to p0, FESTA's term
FAMILIES = ("network", "forest")  # what the method corrects: the segmentation network, or ALCD's random forest


@dataclass(frozen=True)
class Method:
    """How a method uses the clicks."""

    adapts: bool  # SGD steps on the clicked pixels after each click
    channels: bool  # annotation channels fed to the network (at inference and in the steps)
    regulariser: str  # one of REGULARISERS, weighted by the settings' `regularisation` ("none": weight 0)
    description: str
    family: str = "network"  # one of FAMILIES

    def __post_init__(self) -> None:
        if self.regulariser not in REGULARISERS or self.family not in FAMILIES:
            raise ValueError(f"method: regulariser {self.regulariser!r} / family {self.family!r} not in {REGULARISERS} / {FAMILIES}")

    @property
    def regularised(self) -> bool:
        return self.regulariser != "none"

    def adaptation(self, cfg: DiscaConfig) -> DiscaConfig:
        """``cfg`` with the parts this method switches off: no regulariser (weight 0), no channels in
        the steps (dropped at every step); FESTA's term replaces the L1 for ``festa`` (its defaults
        unless ``cfg`` carries one), and no other method keeps a FESTA config."""
        festa = None
        if self.regulariser == "festa":
            from dial_core.interactive.festa import FestaConfig  # torch: not at import (the Snakefile reads this module)

            festa = cfg.festa or FestaConfig()
        return replace(cfg, regularisation=cfg.regularisation if self.regularised else 0.0,
                       ac_drop_probability=cfg.ac_drop_probability if self.channels else 1.0, festa=festa)


METHODS: dict[str, Method] = {
    "ac": Method(False, True, "none", "annotations as input channels (DISIR)"),
    "wtp": Method(True, False, "none", "cross-entropy on the clicked pixels only (What's the Point)"),
    "ac_wtp": Method(True, True, "none", "AC channels and WTP training, no regulariser"),
    "wtp_reg": Method(True, False, "l1", "WTP training with Eq. 1's L1 to p0, no channels"),
    "disca": Method(True, True, "l1", "AC + WTP + L1 to p0 (DIAL Eq. 1)"),
    "disca_l10": Method(True, True, "l1", "DISCA with λ from evaluation.arms.disca_l10 (10)"),
    "festa": Method(True, False, "festa", "point supervision + FESTA's feature regulariser (Hua et al. 2022), no channels"),
    "alcd": Method(False, False, "none", "random forest pre-trained on pixel samples, refit with the clicks (ALCD)", family="forest"),
}


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown interactive method {name!r}; choose one of {', '.join(METHODS)}") from None


def adapting(names: Iterable[str]) -> list[str]:
    """The methods among ``names`` that train the weights (those whose lr is calibrated)."""
    return [n for n in names if method(n).adapts]


def of_family(names: Iterable[str], family: str) -> list[str]:
    """The methods among ``names`` of one family: ``network`` (run by the click / patch protocols on
    a trained network) or ``forest`` (ALCD, its own protocol and no network)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown method family {family!r}; choose one of {', '.join(FAMILIES)}")
    return [n for n in names if method(n).family == family]


def adaptation_settings(evaluation: Mapping, name: str) -> dict:
    """``evaluation.disca`` with the method's own overrides from ``evaluation.arms.<name>``."""
    return {**evaluation["disca"], **((evaluation.get("arms") or {}).get(name) or {})}
