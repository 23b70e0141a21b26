"""DIAL Fig. 5's ablation arms: one registry, the parts each arm switches off, per-arm settings and
calibration."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

import dial_core.evaluation.protocols as protocols
import dial_core.steps as steps
from conftest import briefly_pretrained, toy_scene
from dial_core.errors import ConfigError
from dial_core.interactive.festa import FestaConfig
from dial_core.interactive.methods import METHODS, adaptation_settings, adapting, method, of_family

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
CLASS_NAMES = ["road", "roof", "tree"]


def _evaluation(**arms) -> dict:
    return {"agent": "largest_mistake_centre", "max_images": None, "agent_options": {},
            "clicks": {"n_clicks": 3, "methods": list(METHODS)},
            "disca": {"lr": 0.02, "steps": 2, "regularisation": 1.0, "p0": "initial",
                      "ac_drop_probability": {"clicks": 0.0, "patches": 0.5}, "window": 32, "patch_lr_decay": "constant",
                      "calibration": {"grid": [1e-4, 1e-2], "clicks": 2, "agent": None}},
            "arms": {"disca_l10": {"regularisation": 10.0}, **arms}}


TILING = {"size": 64, "overlap": 16}


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    return briefly_pretrained([toy_scene(rng) for _ in range(3)], len(CLASS_NAMES))


@pytest.fixture(scope="module")
def sample():
    return toy_scene(np.random.default_rng(100))


def test_registry_and_schema_agree():
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    assert schema["$defs"]["method"]["enum"] == list(METHODS)
    arms = schema["properties"]["evaluation"]["properties"]["arms"]
    assert arms["propertyNames"]["enum"] == adapting(METHODS)
    assert adapting(METHODS) == ["wtp", "ac_wtp", "wtp_reg", "disca", "disca_l10", "festa"]
    assert of_family(METHODS, "forest") == ["alcd"] and "alcd" not in adapting(METHODS)  # no lr to calibrate
    assert of_family(METHODS, "network") == [m for m in METHODS if m != "alcd"]
    with pytest.raises(ValueError, match="unknown interactive method 'nope'"):
        method("nope")


def test_forest_method_has_no_network_config(model, tmp_path):
    with pytest.raises(ConfigError, match="alcd is a forest method.*evaluate_clicks_alcd"):
        steps.interaction_config("alcd", _evaluation(), TILING)
    split = {"train": ["i0"], "calibration": ["i1"], "val": []}
    with pytest.raises(ConfigError, match="calibrate_disca: alcd is a forest method"):
        steps.calibrate_disca(tmp_path, SimpleNamespace(name="toy", class_names=CLASS_NAMES), split, model, _evaluation(), TILING, 0,
                              "net", method="alcd")


def test_each_arm_switches_off_its_parts():
    ev = _evaluation()
    cfg = {name: steps.interaction_config(name, ev, TILING).disca for name in of_family(METHODS, "network")}
    assert cfg["ac"].steps == 0
    # WTP: no regulariser, channels dropped at every step; AC+WTP: channels as configured, no regulariser
    assert (cfg["wtp"].regularisation, cfg["wtp"].ac_drop_probability) == (0.0, 1.0)
    assert (cfg["ac_wtp"].regularisation, cfg["ac_wtp"].ac_drop_probability) == (0.0, 0.0)
    assert (cfg["wtp_reg"].regularisation, cfg["wtp_reg"].ac_drop_probability) == (1.0, 1.0)
    assert (cfg["disca"].regularisation, cfg["disca"].ac_drop_probability) == (1.0, 0.0)
    assert cfg["disca_l10"].regularisation == 10.0  # λ per method (evaluation.arms)
    # FESTA: no channels, its own term (the defaults here, no evaluation.arms.festa) instead of the L1
    assert (cfg["festa"].regularisation, cfg["festa"].ac_drop_probability, cfg["festa"].festa) == (1.0, 1.0, FestaConfig())
    assert all(c.festa is None for n, c in cfg.items() if n != "festa")
    assert {c.lr for n, c in cfg.items() if n != "ac"} == {0.02}
    patches = steps.interaction_config("ac_wtp", ev, TILING, "patches").disca
    assert patches.ac_drop_probability == 0.5  # the patch loop's own drop probability


def test_arm_overrides_and_calibrated_lr_are_per_method(tmp_path):
    ev = _evaluation(wtp={"lr": "calibrated", "steps": 5})
    assert adaptation_settings(ev, "wtp")["steps"] == 5 and adaptation_settings(ev, "disca")["steps"] == 2
    with pytest.raises(ConfigError, match="lr of wtp is 'calibrated'.*evaluation.arms.wtp.lr"):
        steps.interaction_config("wtp", ev, TILING)
    calibration = tmp_path / "wtp.json"
    calibration.write_text('{"lr": 0.003}')
    resolved = steps.with_disca_lr(ev, calibration, "wtp")
    assert steps.interaction_config("wtp", resolved, TILING).disca.lr == 0.003
    assert steps.interaction_config("disca", resolved, TILING).disca.lr == 0.02  # the others keep theirs


def _inputs_seen(model, monkeypatch) -> list[float]:
    """The annotation channels' total of every forward pass of ``model``'s copies."""
    seen: list[float] = []
    forward = type(model).forward

    def spy(self, x, *args, **kwargs):
        seen.append(float(x[:, 3:].abs().sum()))
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", spy)
    return seen


@pytest.mark.parametrize("name, sees_channels", [("wtp", False), ("wtp_reg", False), ("ac_wtp", True), ("disca", True)])
def test_wtp_arms_never_feed_the_annotation_channels(model, sample, monkeypatch, name, sees_channels):
    image, label = sample
    seen = _inputs_seen(model, monkeypatch)
    cfg = steps.interaction_config(name, _evaluation(), TILING)
    rows = protocols.click_protocol(model, image, label, CLASS_NAMES, 3, cfg, np.random.default_rng(0))
    assert sum(r["click_row"] >= 0 for r in rows[1:]) == 3
    assert len(seen) > 3  # the steps and the re-predictions
    assert (max(seen) > 0) == sees_channels


def _adapted_state(model, sample, name: str, ev: dict) -> dict:
    image, label = sample
    adapted = {}
    original = protocols._adapt

    def keep(m, *args, **kwargs):  # the adapted copy's weights after the last click
        out = original(m, *args, **kwargs)
        adapted.update({k: v.detach().clone() for k, v in m.state_dict().items()})
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(protocols, "_adapt", keep)
        protocols.click_protocol(model, image, label, CLASS_NAMES, 3, steps.interaction_config(name, ev, TILING),
                                 np.random.default_rng(0))
    return adapted


def test_wtp_reg_reduces_to_wtp_at_lambda_zero_and_differs_otherwise(model, sample):
    wtp = _adapted_state(model, sample, "wtp", _evaluation())
    at_zero = _adapted_state(model, sample, "wtp_reg", _evaluation(wtp_reg={"regularisation": 0.0}))
    regularised = _adapted_state(model, sample, "wtp_reg", _evaluation(wtp_reg={"regularisation": 5.0}))
    def distance(a: dict, b: dict) -> float:
        return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)

    assert wtp and wtp.keys() == at_zero.keys()
    # threaded CPU backward sums in varying order: equal up to float rounding (6e-8 between two WTP runs)
    assert distance(wtp, at_zero) < 1e-6
    assert distance(wtp, regularised) > 1e-4
    assert distance(dict(model.state_dict()), wtp) > 1e-4  # the weights did move


def test_calibration_per_arm_records_the_method(model, tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    scenes = {f"i{k}": toy_scene(rng) for k in range(3)}
    monkeypatch.setattr(steps, "read_image", lambda root, i: scenes[i][0])
    monkeypatch.setattr(steps, "read_label", lambda root, i: scenes[i][1])
    monkeypatch.setattr(steps, "raster_shape", lambda root, i: scenes[i][1].shape)
    info = SimpleNamespace(name="toy", class_names=CLASS_NAMES)
    split = {"train": ["i0"], "calibration": ["i1", "i2"], "val": []}
    result = steps.calibrate_disca(tmp_path, info, split, model, _evaluation(), TILING, 0, "net", method="wtp_reg")
    assert result["method"] == "wtp_reg" and result["lr"] in (1e-4, 1e-2)
    assert [r["method"] for r in result["results"]] == ["ac", "wtp_reg", "wtp_reg"]
    with pytest.raises(ConfigError, match="ac does not adapt"):
        steps.calibrate_disca(tmp_path, info, split, model, _evaluation(), TILING, 0, "net", method="ac")
