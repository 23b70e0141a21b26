"""The workflow as a user runs it: Snakemake end to end on a tiny config, bad params, DVC wiring."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dial_core.active.acquisition import patch_runs
from dial_core.interactive.methods import METHODS, adapting

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile")]


def tiny_params() -> dict:
    """The default params shrunk to seconds: same experiments, smaller data and budgets."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dataset"]["synthetic"].update(n_images=5, size=96)
    params["tiling"].update(size=64, overlap=16)
    params["pretrain"].update(epochs=4, crops_per_epoch=8, crop_size=64, batch_size=4, milestones=[2], checkpoint_every=1, max_clicks=5)
    params["confidnet"].update(epochs=1, crops_per_epoch=4, batch_size=4)
    params["evaluation"]["clicks"]["n_clicks"] = 2
    params["evaluation"]["patches"].update(size=32, max_patches=3)
    params["evaluation"]["disca"]["steps"] = 2
    params["split"]["calibration_images"] = 1
    params["evaluation"]["disca"]["calibration"].update(grid=[1.0e-3, 1.0e-2], clicks=2)
    return params


def run_snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


def _kill_after_first_checkpoint(workdir: Path) -> None:
    """Start the pretraining phase and kill it (SIGKILL, whole process group) once the first
    resumable checkpoint is on disk: what a pre-empted cluster job or a power cut does."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    state = workdir / "data" / "models" / "pretrain" / "synthetic" / "linknet.state.pt"
    proc = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(workdir), "pretrain_all", "--cores", "2", "--resources", "gpu=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):  # it may have died on its own: the assert says so
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state.exists(), "training never wrote its resumable checkpoint"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    _kill_after_first_checkpoint(workdir)
    assert run_snakemake(workdir, "--unlock").returncode == 0  # what a user does after a hard kill
    result = run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1", "--rerun-incomplete")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def copy_of_demo(demo_run: Path, tmp_path: Path) -> Path:
    """The demo folder copied into ``tmp_path``, a sibling of it: Snakemake records the code inputs
    (src/dial_core/...) relative to the work folder, so a copy one level deeper would see another set
    of input files and re-run every job."""
    assert tmp_path.parent == demo_run.parent
    shutil.copytree(demo_run, tmp_path, symlinks=True, dirs_exist_ok=True)
    return tmp_path


@pytest.mark.e2e
def test_demo_dag_produces_report(demo_run: Path) -> None:
    for figure in ("miou_vs_clicks.png", "miou_vs_patches.png"):
        path = demo_run / "reports" / "figures" / figure
        assert path.stat().st_size > 5000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Click protocol" in (demo_run / "reports" / "summary.md").read_text()
    metrics = json.loads((demo_run / "reports" / "metrics" / "pretrain.json").read_text())
    assert 0.0 <= metrics["synthetic/linknet"]["val_miou"] <= 1.0


@pytest.mark.e2e
def test_demo_tables_are_tidy(demo_run: Path) -> None:
    clicks = pd.read_csv(demo_run / "reports" / "tables" / "clicks.csv")
    patches = pd.read_csv(demo_run / "reports" / "tables" / "patches.csv")
    keys = ["dataset", "image", "model", "method", "agent", "acquisition", "encoding", "seed", "step"]
    for table in (clicks, patches):
        assert set(keys + ["miou", "accuracy", "corrected_pixels", "seconds", "iou_car"]) <= set(table.columns)
        assert not table.duplicated(keys).any()
        assert table["miou"].between(0, 1).all()
    split = json.loads((demo_run / "data" / "processed" / "synthetic" / "split.json").read_text())
    assert set(clicks["image"]) == set(split["val"])
    assert set(clicks["method"]) == {"ac", "disca"} and clicks["step"].max() == 2
    assert set(patches["acquisition"]) == {"entropy", "confidnet", "random"} and patches["step"].max() == 3


@pytest.mark.e2e
def test_second_run_has_nothing_to_do(demo_run: Path) -> None:
    result = run_snakemake(demo_run, "-n", "--cores", "2")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.e2e
def test_killed_training_resumed_from_its_checkpoint(demo_run: Path) -> None:
    model = demo_run / "data" / "models" / "pretrain" / "synthetic" / "linknet.pt"
    assert model.exists() and not model.with_name("linknet.state.pt").exists()  # final model supersedes state
    log = (demo_run / "logs" / "synthetic" / "pretrain_linknet.log").read_text()
    assert "resuming from" in log and "epoch 4/4" in log
    assert "epoch 1/4" not in log  # the epochs before the kill were not trained again


def test_bad_params_fail_before_any_job(tmp_path: Path) -> None:
    params = tiny_params()
    params["pretrain"]["epoch"] = 3
    params["pretrain"]["base_network"]["radius"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_snakemake(tmp_path, "--cores", "1")
    assert result.returncode != 0
    assert "pretrain.epoch" in result.stderr and "pretrain.base_network.radius" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_dvc_stages_match_snakemake_and_params() -> None:
    """Every DVC stage runs an existing Snakemake target and names existing params keys."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    listed = subprocess.run([*SNAKEMAKE, "--directory", str(ROOT), "--list-rules"], capture_output=True, text=True, cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    rules = set(listed.stdout.split())
    for name, stage in stages.items():
        command = stage["cmd"].split()
        assert command[0] == "snakemake" and command[1] in rules, f"stage {name}: unknown target {command[1]}"
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"stage {name}: params key {key} not in params.yaml"
                node = node[part]
        for dep in stage.get("deps", []):
            if "${" not in dep and not dep.startswith(("data/", "reports/")):
                assert (ROOT / dep).exists(), f"stage {name}: dependency {dep} does not exist"


def test_paper_preset_dry_run_lists_the_whole_study_grid(tmp_path: Path) -> None:
    """`snakemake -n` with the paper preset plans every study network, its AC evaluation and the report."""
    from dial_core.config import load_params
    from dial_core.studies import expand_networks

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    paper = ROOT / "config" / "paper.yaml"
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"), str(paper))
    assert result.returncode == 0, result.stderr[-3000:]
    counts = {}
    for line in (result.stdout + result.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts.setdefault(parts[0], int(parts[1]))
    params = load_params(ROOT / "params.yaml", ROOT / "workflow/schemas/params.schema.yaml", (paper,))
    networks, entries = expand_networks(params["pretrain"])
    main = len(params["pretrain"]["networks"])
    assert counts["pretrain"] == len(networks) > 10
    assert counts["evaluate_clicks"] == main * len(params["evaluation"]["clicks"]["methods"]) + len(networks) - main
    assert counts["report_studies"] == 1 and counts["prepare_dataset"] == 1
    # DISCA as the papers run it: its lr calibrated per main network, and the DIAL patch protocol with DISCA
    assert params["evaluation"]["disca"]["lr"] == "calibrated" and "disca" in params["evaluation"]["patches"]["methods"]
    assert counts["calibrate_disca"] == main * len(adapting(params["evaluation"]["clicks"]["methods"]))  # per arm
    assert set(params["evaluation"]["clicks"]["methods"]) == set(METHODS)  # DIAL Fig. 5's arms
    runs = patch_runs(params["evaluation"]["patches"]["methods"], params["evaluation"]["patches"]["acquisitions"])
    assert counts["evaluate_patches"] == main * len(runs) == main * (9 + 5)  # DIAL: AC every acquisition, DISCA five
    assert "reports/tables/patches/potsdam/linknet/disca_entropy.csv" in result.stdout + result.stderr
    assert "reports/tables/patches/potsdam/linknet/disca_area_disagreement.csv" in result.stdout + result.stderr
    # Area Disagreement's pool loop: every strategy x 10 seeds, the full-pool reference, its report
    assert counts["pool_loop"] == len(params["active_learning"]["strategies"]) * 10 and counts["pool_full"] == 1
    assert counts["report_pool"] == 1
    assert "reports/metrics/calibration/potsdam/potsdam/linknet/disca.json" in result.stdout + result.stderr
    # the analyses: ALCD pre-trained once, one crop table per App. B user, one user-study table per variant
    assert counts["pretrain_alcd"] == 1 and counts["report_crops"] == 1 and counts["report_users"] == 1
    assert counts["evaluate_crops"] == main * len(params["evaluation"]["crops"]["agents"]) == 5 * main
    assert counts["evaluate_users"] == main * len(params["analyses"]["users"]["variants"]) == 2 * main


def test_paper_preset_with_transfer_plans_sequential_learning_and_the_control(tmp_path: Path) -> None:
    """paper.yaml + airs_to_potsdam.yaml: DIAL Fig. 8 (sequential) and Fig. 6's control are planned."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"),
                           str(ROOT / "config" / "paper.yaml"), str(ROOT / "config" / "airs_to_potsdam.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "reports/tables/sequential/airs/potsdam_buildings/linknet/disca.csv" in output
    assert "data/models/pretrain/potsdam_buildings/linknet.pt" in output  # the control, trained on the target
    assert "reports/tables/clicks/potsdam_buildings/linknet/ac.csv" in output
    assert "reports/figures/sequential.png" in output and "reports/figures/transfer_control.png" in output


def test_active_overlay_plans_the_patch_study_and_the_pool_loop(tmp_path: Path) -> None:
    """config/active.yaml: every acquisition for AC, DISCA's five, own domain and transfer; the pool loop."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"), str(ROOT / "config" / "active.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    counts = {p[0]: int(p[1]) for p in (line.split() for line in output.splitlines()) if len(p) == 2 and p[1].isdigit()}
    assert counts["evaluate_patches"] == counts["evaluate_transfer_patches"] == 14
    assert counts["pool_loop"] == 12 and counts["pool_full"] == 1 and counts["report_pool"] == 1
    assert "reports/tables/transfer_patches/synthetic/synthetic_b/linknet/disca_mc_dropout.csv" in output
    assert "reports/tables/pool/synthetic/area_disagreement_1.csv" in output
    assert "reports/figures/pool_learning_curves.png" in output and "reports/figures/transfer_patches.png" in output


def test_pool_strategy_confidnet_is_refused_before_any_job(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump({"active_learning": {"enabled": True, "strategies": ["confidnet"]}}))
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"), str(tmp_path / "overlay.yaml"))
    assert result.returncode != 0
    assert "active_learning.strategies: confidnet" in result.stderr and "Traceback" not in result.stderr


def test_forest_method_outside_the_click_protocol_is_refused(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"),
                           "--config", "evaluation={'patches': {'methods': ['ac', 'alcd']}}")
    assert result.returncode != 0
    assert "evaluation.patches.methods: alcd is not a network method" in result.stderr


@pytest.mark.parametrize("overlay", sorted((ROOT / "config" / "datasets").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_dataset_overlay_plans_the_whole_dag(tmp_path: Path, overlay: Path) -> None:
    """Selecting any dataset by its overlay gives the same downstream jobs (nothing is run)."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(tmp_path / "params.yaml"), str(overlay))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for rule in ("prepare_dataset", "split", "pretrain", "confidnet", "evaluate_clicks", "evaluate_patches", "report"):
        assert f"rule {rule}:" in output or f"localrule {rule}:" in output, rule


@pytest.mark.e2e
def test_analyses_overlay_runs_every_arm_and_analysis(demo_run: Path, tmp_path: Path) -> None:
    """config/analyses.yaml on top of the demo (a copy: the demo folder stays as it was), with fewer
    crops and user clicks to keep CI short: every arm of DIAL Fig. 5 in both domains (each adapting
    arm with its own calibrated lr, ALCD pre-trained), Table IV's patches, sequential learning, the
    target control, the crops of Fig. 9 / App. B and the user study, each in reproduction.md."""
    workdir = copy_of_demo(demo_run, tmp_path)
    smaller = workdir / "smaller.yaml"  # a file: --config would pass nested numbers as strings
    smaller.write_text(yaml.safe_dump({"evaluation": {"crops": {"n_crops": 12}}, "analyses": {"users": {"clicks": 6}}}))
    result = run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1", "--configfile", str(workdir / "params.yaml"),
                           str(ROOT / "config" / "analyses.yaml"), str(smaller))
    assert result.returncode == 0, result.stderr[-4000:]
    arms = set(yaml.safe_load((ROOT / "config" / "analyses.yaml").read_text())["evaluation"]["clicks"]["methods"])
    assert arms == set(METHODS)
    tables = workdir / "reports" / "tables"
    assert set(pd.read_csv(tables / "clicks.csv")["method"]) == arms
    assert set(pd.read_csv(tables / "transfer.csv")["method"]) == arms
    for target in ("synthetic", "synthetic_b"):
        for arm in adapting(arms):
            calibration = json.loads((workdir / "reports/metrics/calibration/synthetic" / target / "linknet" / f"{arm}.json").read_text())
            assert calibration["method"] == arm and calibration["lr"] in (1.0e-3, 1.0e-2)
    assert json.loads((workdir / "reports/metrics/alcd/synthetic.json").read_text())["samples"] > 0
    patches = pd.read_csv(tables / "patches.csv")
    assert set(zip(patches["method"], patches["acquisition"])) == {(m, a) for m in ("ac", "disca") for a in ("entropy", "random")}
    sequential = pd.read_csv(tables / "sequential.csv")
    assert sorted(sequential.groupby("image")["position"].first()) == list(range(sequential["image"].nunique()))
    crops = pd.read_csv(tables / "crops.csv")
    assert len(crops) == 12 * 5 * 2  # crops x users x methods
    assert set(pd.read_csv(tables / "users.csv")["user"]) == {"class_independent", "class_dependent"}
    assert set(pd.read_csv(tables / "control.csv")["dataset"]) == {"synthetic_b"}
    for figure in ("sequential", "transfer_control", "users", "fig9_mistake_size", "appendix_b"):
        assert (workdir / "reports" / "figures" / f"{figure}.png").stat().st_size > 0
    report = (workdir / "reports" / "reproduction.md").read_text()
    for item in ("DIAL Fig. 5", "DIAL Table IV", "DIAL Fig. 8", "DIAL Fig. 9", "DIAL Fig. 11", "DIAL Fig. 12", "DIAL Fig. 6"):
        section = report.split(f"## {item}:")[1].split("\n## ")[0]
        assert "Not run" not in section and "none of this item's rows" not in section, item
    fig5 = report.split("## DIAL Fig. 5")[1].split("\n## ")[0]
    assert all(f"| {arm} " in fig5 for arm in ("festa", "alcd", "wtp", "disca_l10"))


@pytest.mark.e2e
def test_active_overlay_runs_the_patch_study_and_the_pool_loop(demo_run: Path, tmp_path: Path) -> None:
    """config/active.yaml on top of the demo (a copy), with smaller budgets to keep CI short: every
    acquisition for AC and DISCA's five, own domain and transfer target; the pool loop with two seeds,
    its full-pool reference and report; every AD and DIAL active-learning item in reproduction.md.
    The click evaluations and calibrations read no patch settings, so the overlay leaves them alone."""
    workdir = copy_of_demo(demo_run, tmp_path)
    kept = {p: p.stat().st_mtime_ns for p in (workdir / "reports" / "metrics" / "calibration").rglob("*.json")}
    kept |= {p: p.stat().st_mtime_ns for p in (workdir / "reports" / "tables" / "clicks").rglob("*.csv")}
    assert kept
    smaller = workdir / "smaller.yaml"  # a file: --config would pass nested numbers as strings
    smaller.write_text(yaml.safe_dump({
        "evaluation": {"patches": {"max_patches": 2}},
        "active_learning": {"strategies": ["area_disagreement", "random", "margin"], "max_iterations": 2,
                            "training": {"crop_size": 64, "batch_size": 4, "lr": 0.001, "max_epochs": 2, "patience": 1,
                                         "brightness": 0.2, "crops_per_image": 1}},
    }))
    result = run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1", "--configfile", str(workdir / "params.yaml"),
                           str(ROOT / "config" / "active.yaml"), str(smaller), timeout=2400)  # 28 patch runs, 7 pool jobs
    assert result.returncode == 0, result.stderr[-4000:]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "the overlay re-ran click evaluations or calibrations"
    tables = workdir / "reports" / "tables"
    wanted = set(patch_runs(["ac", "disca"], yaml.safe_load((ROOT / "config" / "active.yaml").read_text())["evaluation"]["patches"]["acquisitions"]))
    for name in ("patches.csv", "transfer_patches.csv"):
        patches = pd.read_csv(tables / name)
        assert set(zip(patches["method"], patches["acquisition"])) == wanted and patches["step"].max() == 2
    pool = pd.read_csv(tables / "pool.csv")
    assert set(pool["strategy"]) == {"area_disagreement", "random", "margin"} and set(pool["seed"]) == {0, 1}
    assert (pool.groupby(["strategy", "seed"])["iteration"].max() == 1).all()
    for strategy, runs in pool.groupby("strategy"):  # no image labelled twice within a run
        for _, run in runs.groupby("seed"):
            added = " ".join(run["added"].astype(str)).split()
            assert len(added) == len(set(added)), strategy
    assert "threshold" in pd.read_csv(tables / "pool_thresholds.csv").columns
    for figure in ("pool_learning_curves", "pool_diversity", "transfer_patches", "miou_vs_patches"):
        assert (workdir / "reports" / "figures" / f"{figure}.png").stat().st_size > 0
    report = (workdir / "reports" / "reproduction.md").read_text()
    for item in ("DIAL Fig. 3", "DIAL Fig. 4", "DIAL Table I", "DIAL Table III", "Area Disagreement Fig. 3",
                 "Area Disagreement Table I", "Area Disagreement Fig. 4"):
        section = report.split(f"## {item}:")[1].split("\n## ")[0]
        assert "Not run" not in section and "none of this item's rows" not in section, item

