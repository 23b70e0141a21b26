"""The pool loop as the workflow runs it (steps.run_pool_strategy on a canonical dataset): a tiny
synthetic pool, every strategy's bookkeeping, resume from a killed run's progress file, and the
full-pool reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dial_core.data.canonical import write_dataset
from dial_core.data.synthetic_adapter import prepare
from dial_core.errors import ConfigError
from dial_core.active.pool import pool_strategies
from dial_core.steps import pool_progress, pool_samples, run_pool_strategy, save_pool_progress, train_full_pool

PARAMS = {
    "strategies": ["area_disagreement", "random"], "seeds": [0], "full_pool_seeds": [0],
    "initial_fraction": 0.2, "validation_fraction": 0.5, "batch_size": 1, "stop_fraction": 0.5, "max_iterations": None,
    "network": {"arch": "unet", "encoder": "mobilenet_v2"},
    "mc_dropout": {"p": 0.2, "passes": 3, "at": "head", "kind": "element"},
    "training": {"crop_size": 64, "batch_size": 2, "lr": 0.001, "max_epochs": 2, "patience": 1, "brightness": 0.2, "crops_per_image": 1},
    "thresholds": [0.9],
}
TILING = {"size": 64, "overlap": 0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("pool") / "synthetic"
    info, samples, groups = prepare({"n_images": 8, "size": 64, "domain": "A", "label_view": "full", "seed": 0}, "synthetic")
    write_dataset(root, info, samples)
    ids = groups["train"]
    split = {"train": ids[:5], "calibration": ids[5:6], "val": ids[6:]}
    return root, info, split


def _run(dataset, strategy, **kwargs):
    root, info, split = dataset
    return run_pool_strategy(root, info, split, strategy, 0, PARAMS, TILING, torch.device("cpu"), **kwargs)


def test_the_loop_labels_half_the_pool_without_repeats_and_never_a_test_image(dataset):
    _, _, split = dataset
    table = _run(dataset, "area_disagreement")
    pool = set(split["train"]) | set(split["calibration"])  # 6 images: 1 at first (20 %), then 1 per iteration to half
    assert list(table["labelled"]) == [1, 2, 3]
    added = " ".join(table["added"]).split()
    assert len(added) == len(set(added)) == 3 and set(added) <= pool and not set(added) & set(split["val"])
    assert table["strategy"].eq("area_disagreement").all() and table["dataset"].eq("synthetic").all()
    assert table["miou"].between(0, 1).all()
    assert table["objects_per_image"].iloc[0] >= table["classes_per_image"].iloc[0] >= 1  # the selected batch's diversity


def test_same_seed_same_selections_and_random_differs_from_scores(dataset):
    a, b = _run(dataset, "area_disagreement"), _run(dataset, "area_disagreement")
    assert list(a["selected"]) == list(b["selected"])
    np.testing.assert_allclose(a["miou"], b["miou"])
    assert list(a["added"])[0] == list(_run(dataset, "random")["added"])[0]  # strategies share the initial set


def test_a_killed_run_resumes_from_its_progress(dataset, tmp_path):
    fingerprint = {"params": PARAMS, "strategy": "random", "seed": 0}
    saved: list[dict] = []

    def record(row):
        saved.append(row)
        save_pool_progress(tmp_path / "p.progress.csv", fingerprint, saved)

    whole = _run(dataset, "random", on_iteration=record)
    first = saved[:1]
    save_pool_progress(tmp_path / "p.progress.csv", fingerprint, first)  # as if killed after iteration 0
    previous = pool_progress(tmp_path / "p.progress.csv", fingerprint)
    assert len(previous) == 1
    resumed = _run(dataset, "random", previous=previous)
    assert list(resumed["added"]) == list(whole["added"]) and list(resumed["selected"]) == list(whole["selected"])
    assert pool_progress(tmp_path / "p.progress.csv", {**fingerprint, "seed": 1}) == []  # other settings: start over


def test_full_pool_reference_trains_on_every_pool_image(dataset):
    root, info, split = dataset
    result = train_full_pool(root, info, split, 0, PARAMS, TILING, torch.device("cpu"))
    assert result["n_train"] + result["n_val"] == result["pool_size"] == 6
    assert 0 <= result["miou"] <= 1 and result["history"]["stopped_epoch"] >= 1


def test_tiles_of_the_pool_images_are_samples(dataset):
    root, info, split = dataset
    samples = pool_samples(root, split["train"][:2], 48)  # 64² images: windows at 0 and 16 (flush with the border)
    assert len(samples) == 8 and f"{split['train'][0]}@16_0" in samples
    assert samples[f"{split['train'][1]}@16_16"] == (split["train"][1], (16, 16, 48, 48))
    table = run_pool_strategy(root, info, split, "entropy", 0, {**PARAMS, "tile": 32, "max_iterations": 2}, TILING, torch.device("cpu"))
    assert table["pool_size"].iloc[0] == 24 and list(table["labelled"]) == [5, 6]  # round(20 % of 24), then 1 each
    assert all("@" in i for i in " ".join(table["added"]).split())


def test_confidnet_is_refused_as_a_pool_strategy():
    with pytest.raises(ConfigError, match="active_learning.strategies: confidnet"):
        pool_strategies({"strategies": ["entropy", "confidnet"]})
