"""The pretraining study grids of DISIR and DIAL, expanded into named networks.

``pretrain.base_network`` holds what every network shares; ``pretrain.networks`` names networks
as overrides of it; ``pretrain.studies`` (when enabled) adds one network per value of each grid
(``grids: {encoding: [binary, dt, ...]}``) and per named variant (``variants: {ic_border:
{annotation: single, click_position: border}}``). Adding a value to params adds a job; no code
changes. A study value identical to an existing network reuses it instead of training it twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from dial_core.errors import ConfigError

NETWORK_KEYS = (
    "arch", "encoder", "encoder_weights", "encoding", "radius", "annotation",
    "click_position", "frequency_balancing", "train_fraction",
)


@dataclass(frozen=True)
class StudyEntry:
    study: str
    value: str
    network: str


def _slug(value) -> str:
    return str(value).lower().replace(".", "p").replace("_", "-")


def _resolve(base: dict, overrides: dict, where: str) -> dict:
    unknown = sorted(set(overrides) - set(NETWORK_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown network key(s) {', '.join(unknown)}; allowed: {', '.join(NETWORK_KEYS)}")
    return {**base, **overrides}


def expand_networks(pretrain: dict) -> tuple[dict[str, dict], list[StudyEntry]]:
    """All networks to train (name → full definition) and the study index (study, value, network)."""
    base = pretrain["base_network"]
    networks = {name: _resolve(base, over or {}, f"pretrain.networks.{name}") for name, over in pretrain["networks"].items()}
    entries: list[StudyEntry] = []
    studies = pretrain.get("studies") or {}
    if not studies.get("enabled", False):
        return networks, entries
    candidates = [
        (study, str(value), {study: value}) for study, values in (studies.get("grids") or {}).items() for value in values
    ] + [("variant", name, over or {}) for name, over in (studies.get("variants") or {}).items()]
    for study, value, overrides in candidates:
        definition = _resolve(base, overrides, f"pretrain.studies ({study} = {value})")
        same = next((name for name, net in networks.items() if net == definition), None)
        name = same or f"{_slug(study)}-{_slug(value)}"
        networks.setdefault(name, definition)
        entries.append(StudyEntry(study, value, name))
    return networks, entries
