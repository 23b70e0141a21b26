"""Tests for parameter validation: the repository's params.yaml is valid and mistakes name their key."""

import copy
from pathlib import Path

import pytest
import yaml

from dial_core.config import load_params, load_schema, validate_params
from dial_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "params.schema.yaml"


@pytest.fixture(scope="module")
def schema() -> dict:
    return load_schema(SCHEMA)


@pytest.fixture(scope="module")
def base() -> dict:
    return yaml.safe_load(PARAMS.read_text())


def _variant(base: dict, dotted: str, value) -> dict:
    params = copy.deepcopy(base)
    *parents, key = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[key] = value
    return params


def _error(params: dict, schema: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate_params(params, schema)
    return str(err.value)


def test_repository_params_are_valid(base):
    params = load_params(PARAMS, SCHEMA)
    assert params == base
    assert params["split"]["val_fraction"] == pytest.approx(0.2)
    assert params["pretrain"]["networks"]


def test_paper_preset_is_valid():
    paper = REPO / "config" / "paper.yaml"
    params = load_params(REPO / "params.yaml", SCHEMA, (paper,))
    assert params["pretrain"]["epochs"] == 50 and params["pretrain"]["milestones"] == [15, 30, 45]
    assert params["pretrain"]["base_network"]["arch"] == "linknet"  # shared experiment definition kept


@pytest.mark.parametrize("overlay", sorted((REPO / "config").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_overlay_is_valid(overlay):
    load_params(REPO / "params.yaml", SCHEMA, (overlay,))


def test_unknown_key_names_it_and_lists_allowed(base, schema):
    params = copy.deepcopy(base)
    params["pretrain"]["epoch"] = 3
    message = _error(params, schema)
    assert "pretrain.epoch" in message
    assert "allowed here" in message
    for allowed in ("epochs", "crops_per_epoch", "milestones", "checkpoint_every"):
        assert allowed in message


def test_unknown_top_level_key(base, schema):
    params = copy.deepcopy(base)
    params["sede"] = 1
    message = _error(params, schema)
    assert "sede" in message and "seed" in message


def test_unknown_nested_key_in_network(base, schema):
    params = copy.deepcopy(base)
    name = next(iter(params["pretrain"]["networks"]))
    params["pretrain"]["networks"][name]["encoder_weight"] = None
    message = _error(params, schema)
    assert f"pretrain.networks.{name}.encoder_weight" in message


def test_missing_key_names_it(base, schema):
    params = copy.deepcopy(base)
    del params["pretrain"]["base_network"]["radius"]
    message = _error(params, schema)
    assert "pretrain.base_network" in message and "radius" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pretrain.epochs", "ten"),
        ("pretrain.epochs", 2.5),
        ("pretrain.frequency_balancing", "yes"),
        ("pretrain.base_network.encoding", "gaussian"),
        ("evaluation.agent", "random_user"),
        ("tiling.size", 100),  # not a multiple of 32
    ],
)
def test_wrong_type_or_value_names_the_key(base, schema, key, value):
    assert key in _error(_variant(base, key, value), schema)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("split.val_fraction", 1.5),
        ("split.val_fraction", 0),
        ("pretrain.base_network.radius", -1),
        ("pretrain.click_probability", 1.2),
        ("pretrain.batch_size", 1),
        ("evaluation.disca.ac_drop_probability", -0.1),
        ("seed", -3),
    ],
)
def test_out_of_range_names_the_key(base, schema, key, value):
    assert key in _error(_variant(base, key, value), schema)


def test_every_violation_is_reported(base, schema):
    params = _variant(base, "pretrain.base_network.radius", -1)
    params = _variant(params, "split.val_fraction", 1.5)
    message = _error(params, schema)
    assert "pretrain.base_network.radius" in message and "split.val_fraction" in message


def test_milestones_not_below_epochs(base, schema):
    params = _variant(base, "pretrain.milestones", [2, base["pretrain"]["epochs"]])
    message = _error(params, schema)
    assert "pretrain.milestones" in message
    ok = _variant(base, "pretrain.milestones", [base["pretrain"]["epochs"] - 1])
    validate_params(ok, schema)


@pytest.mark.parametrize("overlap", ["size", "bigger"])
def test_tiling_overlap_below_size(base, schema, overlap):
    size = base["tiling"]["size"]
    params = _variant(base, "tiling.overlap", size if overlap == "size" else size + 32)
    message = _error(params, schema)
    assert "tiling.overlap" in message


def test_valid_variants_pass(base, schema):
    validate_params(_variant(base, "evaluation.patches.max_patches", None), schema)
    validate_params(_variant(base, "pretrain.base_network.encoding", "binary"), schema)
    validate_params(_variant(base, "pretrain.milestones", []), schema)


def test_invalid_yaml_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\npretrain: [unclosed\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path, SCHEMA)


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(path, SCHEMA)


def test_load_params_reports_the_file(tmp_path, base):
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(_variant(base, "pretrain.epoch", 3)))
    with pytest.raises(ConfigError, match="custom.yaml") as err:
        load_params(path, SCHEMA)
    assert "pretrain.epoch" in str(err.value)


def test_list_item_errors_name_the_index(base, schema):
    message = _error(_variant(base, "report.noc_thresholds", [0.8, 1.5]), schema)
    assert "report.noc_thresholds[1]" in message


def test_empty_network_table(base, schema):
    assert "pretrain.networks" in _error(_variant(base, "pretrain.networks", {}), schema)


# --- each violation names the file (or --config) that set its key ----------------------------
def _layers(base: dict, overlay: dict, cli: dict | None = None) -> list:
    from dial_core.config import deep_merge

    layers = [("params.yaml", base), ("config/x.yaml", overlay)] + ([("--config", cli)] if cli else [])
    merged = base
    for _, layer in layers[1:]:
        merged = deep_merge(merged, layer)
    return merged, layers


def test_overlay_violation_names_the_overlay(base, schema):
    params, layers = _layers(base, {"pretrain": {"epoch": 3}})
    with pytest.raises(ConfigError) as err:
        validate_params(params, schema, layers=layers)
    assert str(err.value).startswith("config/x.yaml is invalid:\n  - unknown key pretrain.epoch")
    assert "params.yaml" not in str(err.value)


def test_each_line_names_its_source(base, schema):
    broken = _variant(base, "pretrain.base_network.radius", -1)
    params, layers = _layers(broken, {"split": {"val_fraction": 1.5}, "sede": 1}, {"seed": -1})
    with pytest.raises(ConfigError) as err:
        validate_params(params, schema, layers=lambda: layers)  # read only when something is wrong
    message = str(err.value)
    assert message.startswith("invalid parameters (merged from params.yaml, then config/x.yaml, then --config):")
    assert "\n  - params.yaml: pretrain.base_network.radius" in message
    assert "\n  - config/x.yaml: split.val_fraction" in message
    assert "\n  - config/x.yaml: unknown key sede" in message
    assert "\n  - --config: seed" in message


def test_key_set_by_both_is_blamed_on_the_last(base, schema):
    params, layers = _layers(_variant(base, "pretrain.epochs", 0), {"pretrain": {"epochs": "ten"}})
    with pytest.raises(ConfigError, match=r"^config/x.yaml is invalid:\n  - pretrain.epochs"):
        validate_params(params, schema, layers=layers)


def test_list_item_is_blamed_on_the_layer_that_set_the_list(base, schema):
    params, layers = _layers(base, {"report": {"noc_thresholds": [0.8, 1.5]}})
    with pytest.raises(ConfigError, match=r"^config/x.yaml is invalid:\n  - report.noc_thresholds\[1\]"):
        validate_params(params, schema, layers=layers)


def test_missing_key_is_blamed_on_params_yaml(base, schema):
    incomplete = copy.deepcopy(base)
    del incomplete["pretrain"]["base_network"]["radius"]
    params, layers = _layers(incomplete, {"pretrain": {"base_network": {"encoding": "binary"}}})
    with pytest.raises(ConfigError, match=r"^params.yaml is invalid:\n  - pretrain.base_network: 'radius'"):
        validate_params(params, schema, layers=layers)


def test_consistency_rule_names_both_sources(base, schema):
    params, layers = _layers(base, {"pretrain": {"epochs": 1}})
    with pytest.raises(ConfigError, match=r"^params.yaml \(pretrain.milestones\), config/x.yaml \(pretrain.epochs\): "):
        validate_params(params, schema, layers=layers)
    params, layers = _layers(base, {"pretrain": {"epochs": 1, "milestones": [1]}})
    with pytest.raises(ConfigError, match=r"^config/x.yaml: pretrain.milestones \[1\] must all be < pretrain.epochs"):
        validate_params(params, schema, layers=layers)


def test_load_params_names_the_bad_overlay(tmp_path):
    overlay = tmp_path / "x.yaml"
    overlay.write_text("pretrain:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=rf"^{overlay} is invalid:"):
        load_params(PARAMS, SCHEMA, (overlay,))


def test_command_line_layers_follow_snakemake_merge_order(tmp_path, monkeypatch):
    from dial_core.config import command_line_layers

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    (tmp_path / "a.yaml").write_text("seed: 2\n")
    cli = [(tmp_path / "params.yaml").absolute(), (tmp_path / "a.yaml").absolute()]
    # Snakemake's workflow.configfiles: the --configfile files, then the Snakefile's configfile:
    layers = command_line_layers([*cli, "params.yaml"], cli, {"seed": 3})
    assert layers == [("params.yaml", {"seed": 1}), ("a.yaml", {"seed": 2}), ("--config", {"seed": 3})]
    assert command_line_layers(["params.yaml"], [], {}) == [("params.yaml", {"seed": 1})]
    assert [n for n, _ in command_line_layers([cli[1], "params.yaml"], cli[1:], None, replace_workflow_config=True)] == ["a.yaml"]


# --- invalid YAML: file and line; missing files: one line ------------------------------------
def test_invalid_yaml_gives_file_line_and_column(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\npretrain: [unclosed\n  epochs: 3\n")
    with pytest.raises(ConfigError) as err:
        load_params(path, SCHEMA)
    message = str(err.value)
    assert message.startswith(f"{path}:3:") and "while parsing a flow sequence at line 2" in message
    assert "\n" not in message


def test_check_files_reports_each_problem_on_one_line(tmp_path, capsys):
    from dial_core.config import main

    good, broken, missing = tmp_path / "good.yaml", tmp_path / "broken.yaml", tmp_path / "missing.yaml"
    good.write_text("seed: 1\n")
    broken.write_text("seed: [1\n")
    assert main(["check", "--base", str(good), "--configfile", str(good)]) == 0
    assert main(["check", "--base", str(good), "--configfile", str(broken), str(missing)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {broken}:2:1: not valid YAML")
    assert lines[1].startswith(f"error: {missing} (given with --configfile) does not exist")
