"""The papers' published numbers and reports/reproduction.md, from small generated tidy tables."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dial_core.report.reproduction import (
    COLUMNS,
    KEY,
    METRICS,
    QUALIFIERS,
    REGISTRY,
    calibration_section,
    per_image_section,
    compare,
    counterpart,
    load_paper_numbers,
    parse_setting,
    reproduction_markdown,
)

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter"]


def curves(model: str, method: str, per_image: dict[str, list[float]], acquisition: str = "none",
           dataset: str = "synthetic", seconds: float = 1.0, encoding: str = "dt") -> pd.DataFrame:
    """Tidy rows as the protocols write them: mIoU per step, per-class IoU, corrected pixels, seconds."""
    rows = []
    for image, values in per_image.items():
        for step, miou in enumerate(values):
            row = {"protocol": "clicks", "dataset": dataset, "image": image, "model": model, "method": method,
                   "agent": "largest_mistake_centre", "acquisition": acquisition, "encoding": encoding, "seed": 0,
                   "step": step, "miou": miou, "accuracy": 0.9, "correct_pixels": 900 + 10 * step,
                   "corrected_pixels": 10 * step, "seconds": seconds if step else 0.5}
            row.update({f"iou_{c}": miou for c in CLASSES})
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def clicks() -> pd.DataFrame:
    return pd.concat([
        curves("linknet", "ac", {"i1": [0.70, 0.72, 0.74], "i2": [0.60, 0.61, 0.62]}, seconds=1.0),
        curves("linknet", "disca", {"i1": [0.70, 0.73, 0.76], "i2": [0.60, 0.62, 0.64]}, seconds=4.0),
    ], ignore_index=True)


@pytest.fixture
def patches() -> pd.DataFrame:
    return pd.concat([
        curves("linknet", "ac", {"i1": [0.70, 0.71, 0.72, 0.73]}, "entropy", seconds=2.0).assign(protocol="patches"),
        curves("linknet", "ac", {"i1": [0.70, 0.70, 0.71, 0.71]}, "random", seconds=1.0).assign(protocol="patches"),
    ], ignore_index=True)


SCALE = {"dataset": "synthetic", "n_clicks": 2, "patch_size": 64, "max_patches": 3, "epochs": 20,
         "crops_per_epoch": 320, "crop_size": 128, "train_images": 16, "network": "linknet"}


# --- the data file ----------------------------------------------------------------------------------

def test_paper_numbers_load_with_their_columns_and_unique_keys():
    paper = load_paper_numbers()
    assert list(paper.columns[: len(COLUMNS)]) == COLUMNS
    assert not paper.duplicated(KEY).any(), paper[paper.duplicated(KEY, keep=False)]
    assert paper["value"].dtype.kind == "f" and paper["value"].notna().all()
    assert set(paper["metric"]) <= METRICS
    assert set(paper["qualifier"]) <= QUALIFIERS
    assert (paper["source"].str.len() > 0).all()
    assert {"DISIR", "DISCA", "DIAL", "Area Disagreement", "Satellite NoC report"} == set(paper["paper"])
    for setting in paper["setting"]:  # key=value pairs, or a plain unit text (Table II)
        assert parse_setting(setting) or "per" in setting


def test_a_few_transcribed_values():
    paper = load_paper_numbers().set_index(KEY)["value"]
    assert paper["DIAL", "Table I", "AIRS", "disca", "miou", "patches=50; acquisition=entropy"] == 92
    assert paper["DISCA", "Table 1", "ISPRS Potsdam", "disca", "miou", "clicks=10"] == 72.2
    assert paper["DISIR", "Table 1", "ISPRS Potsdam", "ac", "corrected_pixels_per_click", "clicks=120"] == 7219
    assert paper["DIAL", "Table V", "ISPRS Potsdam", "ac", "miou_gain", "clicks=120; encoding=gf"] == 5.9


def test_registry_ids_match_the_data_file():
    assert set(REGISTRY) == set(load_paper_numbers()["item"])


def test_registry_rows_use_the_papers_keys(clicks, patches):
    """Every row a function returns names a (method, metric, setting) its item has in the data file."""
    paper = load_paper_numbers()
    studies = pd.DataFrame([{"study": "arch", "value": "linknet", "network": "linknet"},
                            {"study": "encoding", "value": "dt", "network": "linknet"},
                            {"study": "train_fraction", "value": 1.0, "network": "linknet"}])
    tables = {"clicks": clicks, "patches": patches, "transfer": clicks.assign(dataset="synthetic_b"), "studies": studies}
    for item_id, item in REGISTRY.items():
        keys = set(map(tuple, paper.loc[paper["item"] == item_id, ["method", "metric", "setting"]].to_numpy()))
        for row in item.ours(tables, "linknet"):
            assert (row["method"], row["metric"], row["setting"]) in keys, (item_id, row)


# --- our numbers beside the paper's -----------------------------------------------------------------

def test_compare_puts_ours_beside_the_counterpart_with_the_difference(clicks):
    paper = load_paper_numbers()
    table = compare("DISCA Table 1", {"clicks": clicks}, paper, "linknet").set_index(["dataset", "method"])
    # synthetic has Potsdam's 6 classes: ours go beside ISPRS Potsdam only
    assert table.loc[("ISPRS Potsdam", "initial"), "ours"] == pytest.approx(65.0)
    assert table.loc[("ISPRS Potsdam", "disca"), "ours"] == pytest.approx(70.0)
    assert table.loc[("ISPRS Potsdam", "disca"), "difference"] == pytest.approx(70.0 - 72.2)
    assert table.loc[("ISPRS Potsdam", "ac"), "ours_at"] == "clicks=2"  # the paper's 10, ours stop at 2
    assert np.isnan(table.loc[("INRIA", "disca"), "ours"])


def test_patch_and_timing_items(clicks, patches):
    paper = load_paper_numbers()
    tables = {"clicks": clicks, "patches": patches}
    table_i = compare("DIAL Table I", tables, paper, "linknet").set_index(["dataset", "method", "setting"])
    assert table_i.loc[("ISPRS Potsdam", "ac", "patches=50; acquisition=entropy"), "ours"] == pytest.approx(73.0)
    assert table_i.loc[("ISPRS Potsdam", "ac", "patches=50; acquisition=entropy"), "ours_at"] == "patches=3"
    assert np.isnan(table_i.loc[("ISPRS Potsdam", "disca", "patches=50; acquisition=random"), "ours"])  # not run
    table_ii = compare("DIAL Table II", tables, paper, "linknet").set_index(["method", "metric"])
    assert table_ii.loc[("disca", "seconds_ratio_to_ac"), "ours"] == pytest.approx(4.0)
    table_iii = compare("DIAL Table III", tables, paper, "linknet").set_index(["metric", "setting"])
    assert table_iii.loc[("seconds", "acquisition=entropy"), "ours"] == pytest.approx(0.5)
    assert np.isnan(table_iii.loc[("seconds", "acquisition=odin"), "ours"])


def test_study_items_find_their_networks(clicks):
    fb = curves("fb-on", "ac", {"i1": [0.6, 0.7, 0.8]}, encoding="binary")
    nofb = curves("fb-off", "ac", {"i1": [0.6, 0.65, 0.7]}, encoding="binary")
    nofb["iou_car"] = [0.1, 0.1, 0.1]  # no frequency balancing: cars never improve
    studies = pd.DataFrame([{"study": "frequency_balancing", "value": "True", "network": "fb-on"},
                            {"study": "frequency_balancing", "value": "False", "network": "fb-off"}])
    tables = {"clicks": pd.concat([clicks, fb, nofb], ignore_index=True), "studies": studies}
    table = compare("DISIR Fig. 5", tables, load_paper_numbers(), "linknet").set_index("metric")
    assert table.loc["miou_gain_fb_minus_no_fb", "ours"] == pytest.approx(10.0)
    assert table.loc["classes_improved_by_fb", "ours"] == 6


def test_counterpart_by_name_classes_or_single_dataset():
    assert counterpart(["INRIA", "ISPRS Potsdam", "AIRS"], "airs", 2) == "AIRS"
    assert counterpart(["INRIA", "ISPRS Potsdam", "AIRS"], "synthetic", 6) == "ISPRS Potsdam"
    assert counterpart(["INRIA", "ISPRS Potsdam", "AIRS"], "dubai", 2) == "INRIA"
    assert counterpart(["AIRS → ISPRS Potsdam"], "synthetic_b", 6) == "AIRS → ISPRS Potsdam"


# --- the markdown -----------------------------------------------------------------------------------

def test_markdown_states_the_scale_and_lists_what_did_not_run(clicks, patches):
    text = reproduction_markdown({"clicks": clicks, "patches": patches}, SCALE)
    assert "Our run: dataset `synthetic`, 2 evaluated images" in text
    assert "2 clicks per image" in text and "20 training epochs" in text
    assert "simulated user `largest_mistake_centre`" in text
    assert "not expected to match" in text and "direction" in text
    for item_id in REGISTRY:
        assert f"## {item_id}" in text
    fig3 = text.split("## DISCA Fig. 3")[1].split("## ")[0]
    assert "Not run in this configuration" in fig3 and "config/airs_to_potsdam.yaml" in fig3
    fig7 = text.split("## DISIR Fig. 7")[1].split("## ")[0]
    assert "Not run in this configuration" in fig7 and "config/studies.yaml" in fig7
    disca = text.split("## DISCA Table 1")[1].split("## ")[0]
    assert "Not run" not in disca
    potsdam = next(line for line in disca.splitlines() if line.startswith("| ISPRS Potsdam") and "| disca" in line)
    assert [c.strip() for c in potsdam.strip("|").split("|")][5:] == ["72.2", "70", "clicks=2", "-2.2"]


def test_markdown_with_transfer_shows_the_transfer_items(clicks, patches):
    transfer = clicks.assign(dataset="synthetic_b", train_dataset="synthetic")
    text = reproduction_markdown({"clicks": clicks, "patches": patches, "transfer": transfer}, SCALE)
    fig6 = text.split("## DIAL Fig. 6")[1].split("## ")[0]
    assert "Not run" not in fig6 and "> 80" in fig6 and "synthetic_b" in fig6


def test_the_script_writes_the_markdown(tmp_path, clicks, patches):
    """workflow/scripts/reproduction.py with a stand-in for Snakemake's object."""
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    patches.to_csv(tmp_path / "patches.csv", index=False)
    (tmp_path / "pretrain.json").write_text('{"synthetic/linknet": {"train_images": 16, "epochs": 20}}')
    out = tmp_path / "reproduction.md"
    inputs = {"clicks": str(tmp_path / "clicks.csv"), "patches": str(tmp_path / "patches.csv"),
              "pretrain": str(tmp_path / "pretrain.json"), "paper": str(ROOT / "src/dial_core/report/paper_numbers.csv"),
              "calibrations": []}

    class Named(dict):
        __getattr__ = dict.__getitem__

    sm = types.SimpleNamespace(input=Named(inputs), output=Named({"markdown": str(out)}), log=[str(tmp_path / "log")],
                               threads=1, params=Named({"scale": {k: v for k, v in SCALE.items() if k != "train_images"},
                                                        "network": "linknet"}))
    runpy.run_path(str(ROOT / "workflow/scripts/reproduction.py"), init_globals={"snakemake": sm})
    text = out.read_text()
    assert "16 training images" in text and "## DIAL Table V" in text


def test_the_rule_runs_on_pre_written_tables(tmp_path, clicks, patches):
    """`snakemake reproduction` on a workdir holding the combined tables (upstream rules not allowed)."""
    tables = tmp_path / "reports" / "tables"
    tables.mkdir(parents=True)
    (tmp_path / "reports" / "metrics").mkdir()
    clicks.to_csv(tables / "clicks.csv", index=False)
    patches.to_csv(tables / "patches.csv", index=False)
    clicks.assign(dataset="synthetic_b", train_dataset="synthetic").to_csv(tables / "transfer.csv", index=False)
    (tmp_path / "reports" / "metrics" / "pretrain.json").write_text('{"synthetic/linknet": {"train_images": 16}}')
    for target in ("synthetic", "synthetic_b"):  # the main dataset and params.yaml's transfer target
        folder = tmp_path / "reports" / "metrics" / "calibration" / "synthetic" / target / "linknet"
        folder.mkdir(parents=True)
        (folder / "disca.json").write_text(json.dumps({**CALIBRATION, "dataset": target, "trained_on": "synthetic"}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(yaml.safe_load((ROOT / "params.yaml").read_text())))
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "reproduction", "--cores", "1", "--allowed-rules", "reproduction"],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "reports" / "reproduction.md").read_text()
    assert "Our run: dataset `synthetic`" in text and "architecture linknet-" in text
    fig6 = text.split("## DIAL Fig. 6")[1].split("## ")[0]
    assert "Not run" not in fig6 and "synthetic_b" in fig6  # params.yaml's transfer target made it an input
    assert "## DISCA learning-rate calibration" in text and "chosen lr 1e-05" in text  # disca.lr: calibrated
    assert "`disca`, `linknet` on `synthetic_b` (trained on `synthetic`)" in text


CALIBRATION = {"dataset": "synthetic", "network": "linknet", "method": "disca", "lr": 1e-5, "images": ["a1", "a2"], "clicks": 5,
               "agent": "largest_mistake_centre", "results": [
                   {"method": "ac", "lr": None, "mean_gain": 0.01, "gains": {"a1": 0.012, "a2": 0.008}},
                   {"method": "disca", "lr": 1e-5, "mean_gain": 0.02, "gains": {"a1": 0.03, "a2": 0.01}},
                   {"method": "disca", "lr": 1e-3, "mean_gain": -0.1, "gains": {"a1": -0.12, "a2": -0.08}}]}


def test_calibration_section_lists_every_lr_and_marks_the_chosen_one():
    text = "\n".join(calibration_section([CALIBRATION]))
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 3  # header, rule, AC + two grid values
    chosen = [line for line in table if "✓" in line]
    assert len(chosen) == 1 and "1e-05" in chosen[0] and "2" in chosen[0]  # mean gain 2 points
    assert "AC (no adaptation)" in text and "-10" in text and "`a1`, `a2`" in text
    assert calibration_section([]) == []


def test_per_image_section_lists_each_image_and_the_disca_minus_ac_difference():
    rows = []
    for method, gains in (("ac", {"x1": 0.01, "x2": 0.02}), ("disca", {"x1": 0.05, "x2": -0.01})):
        for image, gain in gains.items():
            for step in range(11):
                rows.append({"dataset": "tgt", "train_dataset": "src", "model": "linknet", "method": method, "image": image,
                             "step": step, "miou": 0.5 + gain * step / 10})
    text = "\n".join(per_image_section({"transfer": pd.DataFrame(rows)}, "linknet"))
    assert "`src` → `tgt`, mIoU gain after 10 clicks" in text
    table = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines()
             if line.startswith("|") and not line.startswith("|:")}
    assert table["image"] == ["ac", "disca", "disca − ac"]
    assert table["x1"] == ["1", "5", "4"] and table["x2"] == ["2", "-1", "-3"]
    assert table["mean"] == ["1.5", "2", "0.5"]
    assert per_image_section({}, "linknet") == []


def test_fig_5_lists_every_arm_with_its_gain(clicks):
    arms = pd.concat([clicks.assign(method=m) for m in ("ac", "wtp", "ac_wtp", "wtp_reg", "disca", "disca_l10")])
    rows = REGISTRY["DIAL Fig. 5"].ours({"clicks": arms}, "linknet")
    assert sorted(r["method"] for r in rows) == sorted(["ac", "wtp", "ac_wtp", "wtp_reg", "disca", "disca_l10"])
    paper = load_paper_numbers()
    keys = set(map(tuple, paper.loc[paper["item"] == "DIAL Fig. 5", ["method", "metric", "setting"]].to_numpy()))
    assert {(r["method"], r["metric"], r["setting"]) for r in rows} <= keys
    gains = {r["method"]: r["value"] for r in rows}
    assert len(set(gains.values())) == 1  # the same curves under six names: the same gain


def test_dial_fig_3_and_4_sign_the_acquisition_orderings():
    """ODIN against the others (AC) and the uncertainty orders against random (DISCA), at our last patch."""
    frame = pd.concat([
        curves("linknet", method, {"i1": values}, acquisition).assign(protocol="patches")
        for method, acquisition, values in [
            ("ac", "entropy", [0.70, 0.72, 0.74]), ("ac", "odin", [0.70, 0.70, 0.71]), ("ac", "random", [0.70, 0.70, 0.705]),
            ("disca", "entropy", [0.70, 0.71, 0.73]), ("disca", "random", [0.70, 0.71, 0.72])]
    ], ignore_index=True)
    fig3 = {(r["metric"], r["setting"]): r for r in REGISTRY["DIAL Fig. 3"].ours({"patches": frame}, "linknet")}
    assert fig3[("miou_gain_minus_odin", "patches=50; acquisition=entropy")]["value"] == pytest.approx(3.0)
    assert fig3[("miou_gain_minus_random", "patches=50; acquisition=odin")]["value"] == pytest.approx(0.5)
    assert fig3[("miou_gain_minus_odin", "patches=50; acquisition=entropy")]["ours_at"] == "patches=2"
    assert ("miou_gain_minus_odin", "patches=50; acquisition=confidnet") not in fig3  # not run: no row
    fig4 = REGISTRY["DIAL Fig. 4"].ours({"patches": frame}, "linknet")
    assert [(r["setting"], round(r["value"], 6)) for r in fig4] == [("patches=50; acquisition=entropy", 1.0)]


def test_area_disagreement_items_from_pool_rows():
    """AD Fig. 3 (lead at the last iteration, share of full training), Table I (share of the pool to
    reach 95 % of full training) and Fig. 4 (diversity ratios) on hand-made pool rows."""
    rows = []
    for strategy, mious, objects in [("area_disagreement", [0.50, 0.60, 0.66], 6.0), ("random", [0.50, 0.55, 0.60], 4.0),
                                     ("entropy", [0.50, 0.56, 0.58], 5.0)]:
        for seed in (0, 1):
            for it, miou in enumerate(mious):
                rows.append({"dataset": "synthetic", "strategy": strategy, "seed": seed, "iteration": it, "miou": miou,
                             "labelled_fraction": 0.1 + 0.2 * it, "objects_per_image": objects, "classes_per_image": objects / 2,
                             "iou_a": miou})
    tables = {"pool": pd.DataFrame(rows), "pool_full": pd.DataFrame([{"dataset": "synthetic", "miou": 0.68}])}
    fig3 = {(r["method"], r["metric"]): r for r in REGISTRY["Area Disagreement Fig. 3"].ours(tables, "reduced_unet")}
    assert fig3[("area_disagreement", "miou")]["value"] == pytest.approx(66) and fig3[("area_disagreement", "miou")]["ours_at"] == "iterations=2"
    assert fig3[("area_disagreement", "miou_minus_random")]["value"] == pytest.approx(6)
    assert fig3[("area_disagreement", "miou_share_of_full_pool")]["value"] == pytest.approx(100 * 0.66 / 0.68)
    table = {(r["method"], r["setting"]): r for r in REGISTRY["Area Disagreement Table I"].ours(tables, "reduced_unet")}
    assert table[("area_disagreement", "threshold=0.95")]["value"] == pytest.approx(50)  # 0.66 >= 0.646 at iteration 2
    assert table[("random", "threshold=0.95")]["ours_at"] == "not reached by 50 %"
    fig4 = {r["metric"]: r["value"] for r in REGISTRY["Area Disagreement Fig. 4"].ours(tables, "reduced_unet")}
    assert fig4 == pytest.approx({"classes_per_image": 3.0, "objects_per_image_ratio_to_random": 1.5,
                                  "objects_per_image_ratio_to_entropy": 1.2, "classes_per_image_minus_random": 1.0})
