"""Parameter validation: every key of a params file is checked before any job starts.

The JSON schema (``workflow/schemas/params.schema.yaml``) forbids unknown keys at every level, so
a typo fails at once with the key's dotted path and what is allowed there.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dial_core.errors import ConfigError


def _dotted(path: Any) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def _describe(error: jsonschema.ValidationError) -> list[tuple[list[Any], str]]:
    """The violation as text, each with the key path whose source is to blame."""
    path = list(error.absolute_path)
    where = _dotted(path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        keys = [f"{where}.{k}" if path else k for k in extra]
        return [(path + [k], f"unknown key {key}; allowed here: {', '.join(allowed)}") for k, key in zip(extra, keys)]
    if error.validator == "required":
        missing = [k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance]
        return [(path + missing[:1], f"{where}: {error.message}; add it (see params.yaml for the default)")]
    detail = error.schema.get("description")
    hint = f" ({detail})" if detail else ""
    return [(path, f"{where}: {error.message}{hint}")]


Layer = tuple[str, Mapping[str, Any]]
"""One source of parameters, in merge order: its name (a file, or ``--config``) and what it sets."""


def validate_params(
    params: dict,
    schema: dict,
    source: str = "params.yaml",
    layers: Sequence[Layer] | Callable[[], Sequence[Layer]] | None = None,
) -> None:
    """Raise :class:`ConfigError` listing every violation, each with its dotted key path.

    ``layers`` are the sources ``params`` was merged from (params.yaml, ``--configfile`` overlays,
    ``--config``), in merge order, or a function returning them (read only when something is wrong):
    each violation then names the source that last set its key, so a bad overlay is reported as
    that overlay, not as params.yaml.
    """
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    blame = _Blame(layers, source)
    if errors:
        lines = [(blame.culprit(path), text) for error in errors for path, text in _describe(error)]
        culprits = list(dict.fromkeys(c for c, _ in lines))
        if len(culprits) == 1:
            body = "\n".join(f"  - {text}" for _, text in lines)
            raise ConfigError(f"{culprits[0]} is invalid:\n{body}")
        body = "\n".join(f"  - {culprit}: {text}" for culprit, text in lines)
        raise ConfigError(f"invalid parameters (merged from {blame.sources()}):\n{body}")
    _check_consistency(params, blame)


class _Blame:
    """Which source set a key: the last layer holding it (lists are replaced whole on merge, so a
    path inside a list belongs to the layer that set the list; a key no layer holds, i.e. a missing
    one, belongs to the first, params.yaml)."""

    def __init__(self, layers: Sequence[Layer] | Callable[[], Sequence[Layer]] | None, source: str):
        self._layers = layers
        self.source = source

    @functools.cached_property
    def layers(self) -> list[Layer]:
        if self._layers is None:
            return []
        return list(self._layers() if callable(self._layers) else self._layers)

    def sources(self) -> str:
        return ", then ".join(name for name, _ in self.layers) if self.layers else self.source

    def culprit(self, path: Sequence[Any]) -> str:
        if not self.layers:
            return self.source
        cut = list(path)
        for index, part in enumerate(cut):
            if isinstance(part, int):
                cut = cut[:index]
                break
        for name, data in reversed(self.layers):
            if _holds(data, cut):
                return name
        return self.layers[0][0]

    def __call__(self, *dotted: str) -> str:
        """The source(s) of the keys a consistency rule relates: ``X`` or ``X (a.b), Y (c.d)``."""
        paths = {key: self.culprit(key.split(".")) for key in dotted}
        if len(set(paths.values())) == 1:
            return next(iter(paths.values()))
        return ", ".join(f"{culprit} ({key})" for key, culprit in paths.items())


def _holds(data: Any, path: Sequence[Any]) -> bool:
    node = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _check_consistency(params: dict, blame: Callable[..., str]) -> None:
    """Rules a schema cannot say: relations between keys."""
    pre = params["pretrain"]
    if any(m >= pre["epochs"] for m in pre["milestones"]):
        raise ConfigError(f"{blame('pretrain.milestones', 'pretrain.epochs')}: pretrain.milestones {pre['milestones']} "
                          f"must all be < pretrain.epochs ({pre['epochs']})")
    unknown = sorted(set(params["transfer"]["networks"]) - set(pre["networks"]))
    if unknown:
        raise ConfigError(f"{blame('transfer.networks', 'pretrain.networks')}: transfer.networks {unknown} "
                          f"are not in pretrain.networks ({', '.join(pre['networks'])})")
    names = [params["dataset"]["name"], *(t["name"] for t in params["transfer"]["targets"])]
    if len(set(names)) != len(names):
        raise ConfigError(f"{blame('dataset.name', 'transfer.targets')}: dataset names must differ "
                          f"(dataset.name and transfer.targets[*].name: {names})")
    for index, target in enumerate(params["transfer"]["targets"]):
        if target["adapter"] not in target:
            raise ConfigError(f"{blame('transfer.targets')}: transfer.targets[{index}] uses adapter {target['adapter']} "
                              f"but has no {target['adapter']} section")
    tiling = params["tiling"]
    if tiling["overlap"] >= tiling["size"]:
        raise ConfigError(f"{blame('tiling.overlap', 'tiling.size')}: tiling.overlap ({tiling['overlap']}) "
                          f"must be < tiling.size ({tiling['size']})")


def command_line_layers(
    workflow_files: Sequence[str | Path],
    cli_files: Sequence[str | Path],
    cli_config: Mapping[str, Any] | None = None,
    replace_workflow_config: bool = False,
) -> list[Layer]:
    """The sources of Snakemake's ``config``, in its merge order: the Snakefile's ``configfile:``
    (params.yaml), then the ``--configfile`` files in the order given, then ``--config`` values.

    ``workflow_files`` is Snakemake's ``workflow.configfiles`` (the ``--configfile`` files, then the
    ``configfile:`` ones that exist), ``cli_files`` its ``workflow.config_settings.configfiles``.
    """
    given = [Path(f) for f in cli_files]
    own = [] if replace_workflow_config else [Path(f) for f in workflow_files if not any(f is g for g in cli_files)]
    files = [*own, *given]
    # a file given twice (--configfile params.yaml overlay.yaml repeats the Snakefile's params.yaml)
    # counts where it was merged last
    last = {f.resolve(): index for index, f in enumerate(files)}
    layers: list[Layer] = [(_display(f), _read_yaml(f)) for index, f in enumerate(files) if last[f.resolve()] == index]
    if cli_config:
        layers.append(("--config", dict(cli_config)))
    return layers


def _display(path: Path) -> str:
    """A path as a user wrote it: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"parameter file {path} does not exist; pass an existing file (e.g. params.yaml)") from None
    except IsADirectoryError:
        raise ConfigError(f"parameter file {path} is a folder; pass a YAML file (e.g. params.yaml)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"parameter file {path} cannot be read ({err})") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(yaml_error_line(path, err)) from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must hold a mapping of parameters (key: value lines), not {type(params).__name__}")
    return params


def yaml_error_line(path: str | Path, err: yaml.YAMLError) -> str:
    """``file:line:column: not valid YAML: problem (context)`` — one line an editor can jump to."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    context_mark = getattr(err, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    elif context:
        problem += f" ({context})"
    hint = "; indent with spaces, not tabs" if "\t" in problem or "tab" in problem.lower() else ""
    return f"{where}: not valid YAML: {problem}{hint}"


def check_files(base: Sequence[str | Path] = (), configfiles: Sequence[str | Path] = ()) -> list[str]:
    """One-line problems of the parameter files a Snakemake run will read, before Snakemake reads
    them (it reports a broken or missing ``--configfile`` without the file, the line, or with a
    traceback): ``base`` is params.yaml, ``configfiles`` the ``--configfile`` values."""
    problems = []
    for path, option in [*((p, None) for p in base), *((p, "--configfile") for p in configfiles)]:
        path = Path(path)
        if option and not path.exists():
            start = "" if path.is_absolute() else f" (relative paths start from {Path.cwd()})"
            problems.append(f"{path} (given with --configfile) does not exist; check the path{start}")
            continue
        try:
            _read_yaml(path)
        except ConfigError as err:
            problems.append(str(err))
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dial_core.config check [--base params.yaml] [--configfile FILE ...]``: what the
    ``dial`` script runs before Snakemake; prints ``error: ...`` lines and exits 1 on a problem."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dial_core.config")
    parser.add_argument("command", choices=["check"])
    parser.add_argument("--base", action="append", default=[], help="the workflow's own params file")
    parser.add_argument("--configfile", nargs="*", default=[], help="the --configfile values")
    args = parser.parse_args(argv)
    problems = check_files(args.base, args.configfile)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` on top of ``base``, mapping by mapping (how Snakemake merges --configfile)."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def load_params(path: str | Path, schema_path: str | Path, overlays: tuple[str | Path, ...] = ()) -> dict:
    """Read a params file, overlay the given files in order, and validate the result (what the
    Snakefile does with ``configfile:`` and ``--configfile``)."""
    layers = [(str(p), _read_yaml(Path(p))) for p in (path, *overlays)]
    params = layers[0][1]
    for _, overlay in layers[1:]:
        params = deep_merge(params, overlay)
    validate_params(params, load_schema(schema_path), str(path), layers=layers)
    return params


if __name__ == "__main__":
    sys.exit(main())
