"""The RITM / NoC study as a workflow (issue 11): its steps, Table 1 and Fig. 8 on hand values, the
DAG it adds (nothing by default), and one end-to-end run of config/ritm.yaml through Snakemake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dial_core.errors import CheckpointError, ConfigError, DataError
from dial_core.report.noc_study import click_increments, fig_7, fig_8, iou_curves, paper_beside, table_1, table_1_markdown
from dial_core.report.reproduction import compare, load_paper_numbers
from dial_core.ritm_steps import (
    TIDY,
    build_ritm,
    network_evaluation,
    plain_rows,
    ritm_from_payload,
    ritm_payload,
    ritm_train_config,
    study_crops,
    user_checkpoint,
)
from dial_core.ritm_study import EXPERIMENTS, experiments, needs_source
from test_workflow import ROOT, run_snakemake, tiny_params

SMALL = {"arch": "unet", "encoder": "resnet18"}  # builds in a second; the study's HRNet takes longer


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


# --- experiments and params -------------------------------------------------------------------------

def test_experiments_follow_the_registry_order_and_unknown_names_fail():
    assert experiments({"experiments": ["not_interactive", "from_scratch"]}) == ["from_scratch", "not_interactive"]
    with pytest.raises(ConfigError, match=r"ritm.experiments: unknown 'pretrained'.*from_scratch"):
        experiments({"experiments": ["pretrained"]})
    with pytest.raises(ConfigError, match="ritm.experiments is empty"):
        experiments({"experiments": []})


def test_the_source_is_trained_only_when_an_experiment_needs_it():
    assert needs_source({"experiments": ["finetuning"], "checkpoint": "my.pt"})  # finetuning always starts from the source
    assert needs_source({"experiments": ["no_training"], "checkpoint": None})
    assert not needs_source({"experiments": ["no_training", "from_scratch"], "checkpoint": "my.pt"})
    assert not needs_source({"experiments": ["from_scratch", "not_interactive"], "checkpoint": None})


def test_schema_experiments_agree_with_the_registry():
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    assert schema["properties"]["ritm"]["properties"]["experiments"]["items"]["enum"] == list(EXPERIMENTS)
    params = _params()
    assert params["ritm"]["enabled"] is False  # the default demo gains no job
    assert experiments(params["ritm"]) == list(EXPERIMENTS)


def test_train_config_from_params_keeps_ritm_defaults_and_refuses_unknown_keys():
    training = _params()["ritm"]["training"]
    cfg = ritm_train_config(training, interactive=False)
    assert (cfg.max_num_next_clicks, cfg.click_radius, cfg.focal_alpha, cfg.focal_gamma) == (3, 5, 0.5, 2.0)
    assert (cfg.aux_weight, cfg.threshold, cfg.interactive) == (0.4, 0.49, False)
    inria = yaml.safe_load((ROOT / "config/ritm_inria.yaml").read_text())["ritm"]["training"]
    paper = ritm_train_config(inria)
    assert paper.milestones == (200, 220) and (paper.epochs, paper.crops_per_epoch, paper.lr) == (230, 30000, 5e-4)
    with pytest.raises(ConfigError, match="ritm.training: unknown epoch"):
        ritm_train_config({**training, "epoch": 3})


# --- checkpoints ------------------------------------------------------------------------------------

def test_a_fitting_user_checkpoint_loads_and_a_payload_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_ritm(SMALL)
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    loaded = user_checkpoint(plain, SMALL)
    key = "maps_transform.0.weight"
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])
    rebuilt, interactive = ritm_from_payload(ritm_payload(model, SMALL, "from_scratch", "d", False))
    assert not interactive and torch.equal(rebuilt.state_dict()[key], model.state_dict()[key])


def test_a_checkpoint_that_does_not_fit_names_the_file_and_what_differs(tmp_path):
    state = build_ritm(SMALL).state_dict()
    state.pop("aux_head.3.bias")  # missing
    state["extra.weight"] = torch.zeros(2)  # unexpected
    state["maps_transform.0.weight"] = torch.zeros(16, 4, 1, 1)  # 4 maps instead of 3
    path = tmp_path / "theirs.pt"
    torch.save({"state_dict": state, "epoch": 7}, path)  # RITM's own layout: weights under state_dict
    with pytest.raises(CheckpointError) as err:
        user_checkpoint(path, SMALL)
    message = str(err.value)
    assert str(path) in message and "arch unet, encoder resnet18" in message
    assert "1 missing keys (aux_head.3.bias)" in message and "1 unexpected keys (extra.weight)" in message
    assert "maps_transform.0.weight (16, 4, 1, 1) vs (16, 3, 1, 1)" in message and "ritm.checkpoint" in message
    junk = tmp_path / "junk.pt"
    torch.save({"epoch": 3}, junk)
    with pytest.raises(CheckpointError, match="holds no state dict"):
        user_checkpoint(junk, SMALL)
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole pickled module, as RITM saves its config objects
    with pytest.raises(CheckpointError, match=r"ritm.checkpoint .*pickled.pt cannot be loaded with weights_only=True"):
        user_checkpoint(pickled, SMALL)
    with pytest.raises(CheckpointError, match="nosuch.pt does not exist"):
        user_checkpoint(tmp_path / "nosuch.pt", SMALL)
    with pytest.raises(CheckpointError, match="not a RITM checkpoint"):
        ritm_from_payload({"state_dict": state}, path)


# --- crops and the not-interactive network ------------------------------------------------------------

def test_test_crops_drop_building_free_crops_and_say_so(tmp_path, monkeypatch):
    labels = {"a": np.zeros((100, 150), np.uint8), "b": np.zeros((100, 100), np.uint8)}
    labels["a"][10, 60] = 1  # crop (0, 50) of a only
    monkeypatch.setattr("dial_core.ritm_steps.read_label", lambda root, i: labels[i])
    kept, excluded = study_crops(tmp_path, ["a", "b"], 50)
    assert kept == [("a", (0, 50, 50, 50))] and excluded == 6 + 4 - 1
    labels["a"][:] = 0
    with pytest.raises(DataError, match="lower ritm.crop_size"):
        study_crops(tmp_path, ["a", "b"], 50)


def test_a_network_trained_without_clicks_holds_its_click_free_iou():
    torch.manual_seed(0)
    model = build_ritm(SMALL)
    rng = np.random.default_rng(0)
    image, label = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (rng.random((64, 64)) > 0.5).astype(np.uint8)
    rows = plain_rows(model, image, label, budget=4, threshold=0.49, crop="c")
    assert [r["click"] for r in rows] == [1, 2, 3, 4]
    assert len({r["iou"] for r in rows}) == 1 and rows[0]["iou"] == rows[0]["iou0"]
    assert not any(r["clicked"] for r in rows)


def test_network_lr_comes_from_the_calibration_or_the_number(tmp_path):
    evaluation = _params()["evaluation"]
    calibration = tmp_path / "disca.json"
    calibration.write_text(json.dumps({"lr": 1e-3}))
    assert network_evaluation(evaluation, "disca", "calibrated", calibration)["arms"]["disca"]["lr"] == 1e-3
    assert network_evaluation(evaluation, "disca", 2e-6, None)["arms"]["disca"]["lr"] == 2e-6
    assert network_evaluation(evaluation, "ac", "calibrated", None) == evaluation  # AC adapts nothing
    with pytest.raises(ConfigError, match="ritm.networks.disca_lr"):
        network_evaluation(evaluation, "disca", "calibrated", None)


# --- Table 1 and Figs. 7 / 8 on hand values ------------------------------------------------------------

def _tidy(curves: dict[tuple[str, str], dict[str, list[float]]], budget: int = 4, excluded: int = 3) -> pd.DataFrame:
    rows = []
    for (model, experiment), per_crop in curves.items():
        for crop, ious in per_crop.items():
            for k, iou in enumerate(ious, start=1):
                rows.append({"dataset": "d", "image": crop.split("@")[0], "model": model, "experiment": experiment, "crop": crop,
                             "method": "ritm" if model == "ritm" else experiment, "click": k, "iou": iou, "iou0": np.nan,
                             "seconds": 0.1, "click_row": 1, "click_col": 1, "positive": True, "clicked": True,
                             "budget": budget, "excluded": excluded})
    return pd.DataFrame(rows, columns=TIDY)


HAND = {
    ("ritm", "finetuning"): {"i@0_0": [0.5, 0.85, 0.95], "i@0_4": [0.7, 0.75, 0.8, 0.82]},  # first stops early (held)
    ("ritm", "from_scratch"): {"i@0_0": [0.3, 0.5, 0.6, 0.7], "i@0_4": [0.9]},
    ("linknet", "ac"): {"i@0_0": [0.2, 0.4, 0.6, 0.8], "i@0_4": [0.5, 0.5, 0.5, 0.5]},
}


def test_table_1_on_hand_curves_with_the_reports_numbers_beside():
    table = paper_beside(table_1(_tidy(HAND), [0.8, 0.9]), load_paper_numbers()).set_index("experiment")
    assert list(table.index) == ["from_scratch", "finetuning", "ac"]  # RITM experiments in registry order, then networks
    fine = table.loc["finetuning"]
    assert fine["noc4@80"] == pytest.approx((2 + 3) / 2) and fine["noc4@90"] == pytest.approx((3 + 4) / 2)
    assert fine["over4@90"] == pytest.approx(0.5) and fine["never4@90"] == pytest.approx(0.5)
    assert fine["avg4_iou"] == pytest.approx((0.95 + 0.82) / 2) and fine["iou@1"] == pytest.approx(0.6)
    assert fine["excluded"] == 3 and fine["n"] == 2
    assert table.loc["from_scratch", "noc4@80"] == pytest.approx((4 + 1) / 2)
    assert table.loc["ac", "label"] == "AC (linknet)" and fine["label"] == "RITM Finetuning"
    # the report's Table 1 (NoC20, its budget) beside our RITM rows, as fractions like ours
    assert fine["report_noc20@80"] == pytest.approx(5.66) and fine["report_avg20_iou"] == pytest.approx(0.875)
    assert fine["report_over20@80"] == pytest.approx(0.135)
    assert np.isnan(table.loc["ac", "report_noc20@80"])
    markdown = table_1_markdown(table.reset_index(), [0.8, 0.9], "Our run: hand values.")
    assert "| RITM Finetuning | 2.50 |" in markdown and "Our run: hand values." in markdown


def test_reproduction_item_sets_table_1_beside_the_report():
    frame = _tidy(HAND, budget=20)
    table = compare("Satellite NoC report Table 1", {"ritm": frame}, load_paper_numbers(), "linknet")
    row = table.set_index(["method", "metric", "setting"]).loc[("finetuning", "noc", "clicks=20; iou=0.8")]
    assert row["ours"] == pytest.approx((2 + 3) / 2) and row["value"] == pytest.approx(5.66)
    avg = table.set_index(["method", "metric", "setting"]).loc[("from_scratch", "avg_iou", "clicks=20")]
    assert avg["ours"] == pytest.approx(100 * (0.7 + 0.9) / 2)
    assert table.loc[table["method"] == "no_training", "ours"].isna().all()  # not run here


def test_fig_8_shows_per_click_increments_not_the_cumulative_gain():
    curves = iou_curves(_tidy({("ritm", "finetuning"): {"a@0_0": [0.5, 0.7, 0.8, 0.8]},
                               ("ritm", "not_interactive"): {"a@0_0": [0.6] * 4},
                               ("linknet", "ac"): {"a@0_0": [0.2, 0.5], "a@0_4": [0.4, 0.5, 0.6, 0.6]}}))
    increments = click_increments(curves)
    fine = increments[increments["experiment"] == "finetuning"].set_index("click")["gain"]
    assert fine.to_dict() == pytest.approx({2: 0.2, 3: 0.1, 4: 0.0})  # cumulative would be 0.2, 0.3, 0.3
    ac = increments[increments["experiment"] == "ac"].set_index("click")["gain"]
    assert ac.to_dict() == pytest.approx({2: 0.2, 3: 0.05, 4: 0.0})  # the short curve held at 0.5
    assert "not_interactive" not in set(increments["experiment"])  # ignores clicks: not drawn
    assert len(fig_7(curves).axes[0].lines) >= 3 and len(fig_8(increments).axes[0].lines) >= 2


# --- the DAG ------------------------------------------------------------------------------------------

def _counts(output: str) -> dict[str, int]:
    return {p[0]: int(p[1]) for p in (line.split() for line in output.splitlines()) if len(p) == 2 and p[1].isdigit()}


def test_default_dag_has_no_ritm_job_and_the_overlay_adds_the_study(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    default = run_snakemake(tmp_path, "-n", "--cores", "1")
    assert default.returncode == 0, default.stderr[-3000:]
    assert not any(rule.startswith(("ritm", "report_ritm", "combine_ritm")) for rule in _counts(default.stdout + default.stderr))
    overlay = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"), str(ROOT / "config/ritm.yaml"))
    assert overlay.returncode == 0, overlay.stderr[-3000:]
    output = overlay.stdout + overlay.stderr
    counts = _counts(output)
    # from scratch and not interactive on A, from scratch on the source B; finetuning; no training; 4 + 2 evaluations
    assert counts["ritm_train"] == 3 and counts["ritm_finetune"] == 1 and counts["ritm_no_training"] == 1
    assert counts["ritm_evaluate"] == 4 and counts["ritm_evaluate_network"] == 2 and counts["report_ritm"] == 1
    assert counts["prepare_dataset"] == 4  # synthetic, synthetic_b, and the two buildings views
    assert "data/models/pretrain/synthetic_buildings/linknet.pt" in output  # the AC / DISCA network of the crops
    assert "reports/metrics/calibration/synthetic_buildings/synthetic_buildings/linknet/disca.json" in output
    assert "data/models/ritm/synthetic_b_buildings/from_scratch.pt" in output


def test_a_user_checkpoint_replaces_the_source_and_the_inria_preset_plans_the_study(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "mine.pt").write_bytes(b"")
    (tmp_path / "own.yaml").write_text(yaml.safe_dump({"ritm": {"enabled": True, "checkpoint": "mine.pt",
                                                                 "experiments": ["no_training", "from_scratch"]}}))
    own = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"), str(tmp_path / "own.yaml"))
    assert own.returncode == 0, own.stderr[-3000:]
    assert "synthetic_b_buildings" not in own.stdout + own.stderr  # no source dataset, no source model
    assert _counts(own.stdout + own.stderr)["ritm_no_training"] == 1
    preset = run_snakemake(tmp_path, "ritm_all", "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"),
                           str(ROOT / "config/ritm_inria.yaml"))
    assert preset.returncode == 0, preset.stderr[-3000:]
    output = preset.stdout + preset.stderr
    assert "data/raw/inria_noc/aerialimagelabeling.7z.005" in output and "data/models/ritm/airs_noc/from_scratch.pt" in output
    assert "reports/tables/ritm/inria_noc/linknet/disca.csv" in output and "reports/ritm_table1.md" in output


# --- end to end ---------------------------------------------------------------------------------------

def tiny_ritm_params() -> dict:
    """tiny_params with the RITM study on and shrunk to seconds per job."""
    params = tiny_params()
    ritm = params["ritm"]
    ritm["enabled"] = True
    for key in ("dataset", "source"):
        ritm[key]["synthetic"].update(n_images=5, size=128)
    ritm["training"].update(epochs=1, crops_per_epoch=8, crop_size=64, batch_size=4)
    ritm["evaluation"].update(crop_size=64, budget=6)
    return params


@pytest.mark.e2e
def test_ritm_overlay_runs_through_snakemake(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_ritm_params()))
    result = run_snakemake(tmp_path, "ritm_all", "--cores", "2", "--resources", "gpu=1", timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(tmp_path / "reports/tables/ritm_table1.csv")
    ritm_rows = table[table["model"] == "ritm"]
    assert list(ritm_rows["experiment"]) == list(EXPERIMENTS)
    assert set(table.loc[table["model"] == "linknet", "experiment"]) == {"ac", "disca"}
    for column in ("noc6@80", "noc6@85", "noc6@90", "over6@85", "avg6_iou"):
        assert np.isfinite(table[column]).all() and table[column].between(0, 6).all(), column
    assert (table["n"] > 0).all() and (table["excluded"] >= 0).all()
    rows = pd.read_csv(tmp_path / "reports/tables/ritm.csv")
    crops = rows.groupby(["model", "experiment"])["crop"].apply(lambda c: tuple(sorted(set(c))))
    assert crops.nunique() == 1  # RITM, AC and DISCA on the same crops
    for figure in ("ritm_iou_vs_clicks.png", "ritm_click_gain.png"):
        assert (tmp_path / "reports/figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "NoC6@80" in (tmp_path / "reports/ritm_table1.md").read_text()
    assert (tmp_path / "data/models/ritm/synthetic_buildings/finetuning.pt").exists()
