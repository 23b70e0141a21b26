"""Parameter validation: every key of a params file is checked before any job starts.

The JSON schema (``workflow/schemas/params.schema.yaml``) forbids unknown keys at every level, so
a typo fails at once with the key's dotted path and what is allowed there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dial_core.errors import ConfigError


def _dotted(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _dotted(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(f"{where}.{k}" if error.absolute_path else k for k in extra)
        return f"unknown key {keys}; allowed here: {', '.join(allowed)}"
    if error.validator == "required":
        return f"{where}: {error.message}; add it (see params.yaml for the default)"
    detail = error.schema.get("description")
    hint = f" ({detail})" if detail else ""
    return f"{where}: {error.message}{hint}"


def validate_params(params: dict, schema: dict, source: str = "params.yaml") -> None:
    """Raise :class:`ConfigError` listing every violation, each with its dotted key path."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"{source} is invalid:\n{lines}")
    _check_consistency(params, source)


def _check_consistency(params: dict, source: str) -> None:
    """Rules a schema cannot say: relations between keys."""
    pre = params["pretrain"]
    if any(m >= pre["epochs"] for m in pre["milestones"]):
        raise ConfigError(f"{source}: pretrain.milestones {pre['milestones']} must all be < pretrain.epochs ({pre['epochs']})")
    unknown = sorted(set(params["transfer"]["networks"]) - set(pre["networks"]))
    if unknown:
        raise ConfigError(f"{source}: transfer.networks {unknown} are not in pretrain.networks ({', '.join(pre['networks'])})")
    names = [params["dataset"]["name"], *(t["name"] for t in params["transfer"]["targets"])]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: dataset names must differ (dataset.name and transfer.targets[*].name: {names})")
    for index, target in enumerate(params["transfer"]["targets"]):
        if target["adapter"] not in target:
            raise ConfigError(f"{source}: transfer.targets[{index}] uses adapter {target['adapter']} but has no {target['adapter']} section")
    tiling = params["tiling"]
    if tiling["overlap"] >= tiling["size"]:
        raise ConfigError(f"{source}: tiling.overlap ({tiling['overlap']}) must be < tiling.size ({tiling['size']})")


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _read_yaml(path: Path) -> dict:
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"parameter file {path} does not exist; pass an existing file (e.g. params.yaml)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must hold a mapping of parameters")
    return params


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` on top of ``base``, mapping by mapping (how Snakemake merges --configfile)."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_params(path: str | Path, schema_path: str | Path, overlays: tuple[str | Path, ...] = ()) -> dict:
    """Read a params file, overlay the given files in order, and validate the result (what the
    Snakefile does with ``configfile:`` and ``--configfile``)."""
    params = _read_yaml(Path(path))
    for overlay in overlays:
        params = deep_merge(params, _read_yaml(Path(overlay)))
    source = " + ".join(str(p) for p in (path, *overlays))
    validate_params(params, load_schema(schema_path), source)
    return params
