"""Area Disagreement's pool-based loop: bookkeeping (no double labels, held-out test set, seeds,
budget, resume), from-scratch training with early stopping, the reduced U-Net, batch diversity
and the report's band, Table I and Fig. 4 frames."""

from __future__ import annotations

import io
import zlib
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import toy_scene

from dial_core.active.diversity import batch_diversity, label_diversity
from dial_core.active.pool import (
    PoolConfig,
    PoolState,
    ids_to_cell,
    initial_labelled,
    run_pool_loop,
    select_top,
    split_labelled,
)
from dial_core.errors import ConfigError, DataError
from dial_core.models.reduced_unet import ReducedUNet
from dial_core.models.segmenter import ARCHITECTURES, NetworkSpec, Segmenter
from dial_core.report import pool as report
from dial_core.training import pool_training
from dial_core.training.crops import CropSource
from dial_core.training.pool_training import (
    PoolCropDataset,
    PoolTrainConfig,
    early_stopping_epochs,
    train_pool_model,
)

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
POOL = [f"img{i:03d}" for i in range(40)]
TEST = [f"test{i:02d}" for i in range(5)]
CFG = PoolConfig(initial_fraction=0.1, validation_fraction=0.2, batch_size=3, stop_fraction=0.5, seed=7)


# --------------------------------------------------------------------------------------------
# the loop with fake models: a model is (its training ids, its seed)
# --------------------------------------------------------------------------------------------
def _train(train_ids, val_ids, seed):
    assert not set(train_ids) & set(val_ids)
    return tuple(sorted(train_ids)), seed


def _evaluate(model, test_ids):
    return {"miou": len(model[0]) / 100, "iou": {"a": 0.5, "b": 0.25}}


def _score(model, ids):
    """Deterministic scores that depend on the model, with many ties (crc32 mod 4)."""
    return {i: float(zlib.crc32(f"{model[1]}-{i}".encode()) % 4) for i in ids}


def _run(cfg=CFG, score=_score, **kwargs):
    return run_pool_loop(POOL, TEST, cfg, score, _train, _evaluate, **kwargs)


@pytest.mark.parametrize("score", [None, _score], ids=["random", "scored"])
def test_no_sample_labelled_twice_and_budget(score):
    rows = _run(score=score)
    added = [i for row in rows for i in row["added"]]
    assert len(added) == len(set(added)) and set(added) <= set(POOL)
    assert [r["iteration"] for r in rows] == list(range(len(rows)))
    assert rows[0]["labelled"] == 4 and len(rows[0]["added"]) == 4  # 10 % of 40
    assert rows[-1]["labelled"] == 20 and rows[-1]["labelled_fraction"] == 0.5  # stops at half the pool
    assert rows[-1]["selected"] == [] and all(len(r["selected"]) for r in rows[:-1])
    assert [r["labelled"] for r in rows] == [4, 7, 10, 13, 16, 19, 20]  # last batch cut to the budget
    for before, after in pairwise(rows):
        assert after["added"] == before["selected"]
    assert all(r["n_train"] + r["n_val"] == r["labelled"] and r["n_val"] >= 1 for r in rows)
    assert rows[0]["iou_a"] == 0.5 and "iou" not in rows[0]  # nested metrics flattened


def test_test_set_never_in_pool():
    with pytest.raises(ValueError, match="test images are also in the pool.*img005"):
        run_pool_loop(POOL, [*TEST, "img005"], CFG, None, _train, _evaluate)


def test_same_seed_same_selections_random_differs_across_seeds():
    assert _run(score=None) == _run(score=None)
    assert _run() == _run()
    other = _run(cfg=PoolConfig(batch_size=3, seed=8), score=None)
    mine = _run(score=None)
    assert other[0]["added"] != mine[0]["added"] and other[0]["selected"] != mine[0]["selected"]


def test_listing_order_does_not_matter():
    shuffled = list(reversed(POOL))
    assert run_pool_loop(shuffled, TEST, CFG, None, _train, _evaluate) == _run(score=None)


def test_select_top_ties_are_broken_by_id():
    scores = {"c": 1.0, "a": 1.0, "b": 2.0, "d": 0.5}
    assert select_top(scores, 2) == ["b", "a"]
    assert select_top(dict(reversed(scores.items())), 3) == ["b", "a", "c"]
    assert select_top(scores, 0) == []
    with pytest.raises(ValueError, match="not finite"):
        select_top({"a": float("nan")}, 1)


@pytest.mark.parametrize("score", [None, _score], ids=["random", "scored"])
@pytest.mark.parametrize("finished", [1, 3, 7])
def test_resume_from_partial_rows_gives_the_same_run(score, finished):
    full = _run(score=score)
    partial = _run(score=score, max_iterations=finished)
    assert partial == full[:finished]
    # through a CSV, as the workflow would store them: ids as space-separated cells
    frame = pd.DataFrame([{**r, "added": ids_to_cell(r["added"]), "selected": ids_to_cell(r["selected"])} for r in partial])
    previous = pd.read_csv(io.StringIO(frame.to_csv(index=False))).to_dict("records")
    seen = []
    resumed = _run(score=score, previous=previous, on_iteration=lambda row, model: seen.append(row["iteration"]))
    assert [r["selected"] for r in resumed] == [r["selected"] for r in full]
    assert [r["added"] for r in resumed] == [r["added"] for r in full]
    assert seen == list(range(finished, len(full)))  # finished iterations are not re-run


def test_resume_refuses_rows_of_another_run():
    rows = _run(score=None, max_iterations=2)
    with pytest.raises(DataError, match="seed"):
        run_pool_loop(POOL, TEST, PoolConfig(batch_size=3, seed=8), None, _train, _evaluate, previous=rows)
    tampered = [dict(rows[0]), {**rows[1], "added": list(reversed(rows[1]["added"]))}]
    with pytest.raises(DataError, match="iteration 1 added other images"):
        _run(score=None, previous=tampered)


def test_pool_state_refuses_double_labels_and_outsiders():
    state = PoolState.new(POOL, CFG)
    state.add(["img001", "img002"], 0)
    with pytest.raises(ValueError, match="already labelled: img001"):
        state.add(["img001"], 1)
    with pytest.raises(ValueError, match="not in the pool: nope"):
        state.add(["nope"], 1)
    with pytest.raises(ValueError, match="already labelled: img003"):
        state.add(["img003", "img003"], 1)
    assert not state.done() and state.budget == 20 and len(state.unlabelled) == 38


def test_initial_and_split_sizes():
    rng = np.random.default_rng(0)
    initial = initial_labelled(POOL, CFG, rng)
    assert len(initial) == 4 and len(set(initial)) == 4
    train, val = split_labelled(POOL[:10], CFG, np.random.default_rng(1))
    assert len(val) == 2 and len(train) == 8 and not set(train) & set(val)
    assert split_labelled(POOL[:2], CFG, np.random.default_rng(1))[1] != []  # at least 1 each
    assert split_labelled(POOL[:1], CFG, np.random.default_rng(1)) == (POOL[:1], [])
    with pytest.raises(DataError, match="occur twice"):
        initial_labelled(["a", "a"], CFG, rng)


@pytest.mark.parametrize("key, value", [("initial_fraction", 0), ("validation_fraction", 1.0), ("batch_size", 0),
                                        ("initial_fraction", 0.6)])
def test_pool_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        PoolConfig(**{key: value})


# --------------------------------------------------------------------------------------------
# the reduced U-Net
# --------------------------------------------------------------------------------------------
def test_reduced_unet_output_and_features():
    spec = NetworkSpec("reduced_unet", "none", 8, encoding="dt")
    model = Segmenter(spec)
    x = torch.zeros(1, spec.in_channels, 16, 32)
    features = model.net.encoder(x)
    assert [f.shape[1] for f in features] == [3 + 8, 32, 64, 128, 256, 512]
    assert [f.shape[-1] for f in features] == [32, 32, 16, 8, 4, 2]
    logits, decoded = model.forward_features(x)
    assert logits.shape == (1, 8, 16, 32) and decoded.shape == (1, 32, 16, 32)
    assert model.feature_channels == 32 and isinstance(model.net.segmentation_head[0], torch.nn.Conv2d)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model.forward_features(x)[0])
    with pytest.raises(ValueError, match="divisible by 16"):
        model.net.encoder(torch.zeros(1, spec.in_channels, 40, 32))


def test_reduced_unet_refuses_pretrained_weights():
    with pytest.raises(ConfigError, match="encoder_weights"):
        ReducedUNet(encoder_weights="imagenet", in_channels=3, classes=2)


def test_architecture_registry_and_schema_agree():
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    assert schema["$defs"]["network_keys"]["arch"]["enum"] == list(ARCHITECTURES)


# --------------------------------------------------------------------------------------------
# training one iteration
# --------------------------------------------------------------------------------------------
class TinyNet(torch.nn.Module):
    """smp-shaped stand-in for the training tests (the reduced U-Net's 7.8 M weights take seconds per
    step on a busy 2-core CPU; the training logic does not depend on the network)."""

    def __init__(self, encoder_name, encoder_weights, in_channels, classes):
        super().__init__()
        self.encoder = torch.nn.Conv2d(in_channels, 8, 3, padding=1)
        self.decoder = torch.nn.Sequential(torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        self.segmentation_head = torch.nn.Sequential(torch.nn.Conv2d(8, classes, 1))

    def forward(self, x):
        return self.segmentation_head(self.decoder(self.encoder(x)))


SPEC = NetworkSpec("tiny", "none", 3, annotation="single")


@pytest.fixture
def tiny_network(monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "tiny", TinyNet)


def _source(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    pairs = [toy_scene(rng, size, noise=25) for _ in range(n)]
    return CropSource.from_arrays([p[0] for p in pairs], [p[1] for p in pairs])


def _tcfg(**changes):
    return PoolTrainConfig(**{"crop_size": 32, "batch_size": 2, "max_epochs": 2, "patience": 2, **changes})


def test_early_stopping_rule():
    losses = [1.0, 0.8, 0.9, 0.95, 0.85, 0.7]
    assert early_stopping_epochs(losses, patience=3) == (1, 4)  # 3 epochs without improvement after epoch 1
    assert early_stopping_epochs(losses, patience=5) == (5, 5)  # never stops: trains them all
    assert early_stopping_epochs([1.0, 0.99, 0.98, 0.97], patience=2, min_delta=0.05) == (0, 2)


@pytest.mark.usefixtures("tiny_network")
def test_training_stops_after_patience_and_restores_the_best_weights(monkeypatch):
    losses = iter([1.0, 0.8, 0.9, 0.95, 0.85, 0.1])
    states = []

    def fake_validation_loss(model, source, device):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(losses)

    monkeypatch.setattr(pool_training, "validation_loss", fake_validation_loss)
    model, history = train_pool_model(SPEC, _source(2), _source(1, seed=1), _tcfg(max_epochs=6, patience=3), 0, CPU)
    assert history.stopped_early and history.stopped_epoch == 5 and history.best_epoch == 2
    assert len(history.train_loss) == 5 and history.val_loss == [1.0, 0.8, 0.9, 0.95, 0.85]
    final = model.state_dict()
    assert all(torch.equal(final[k], states[1][k]) for k in final)
    assert not all(torch.equal(final[k], states[-1][k]) for k in final)


@pytest.mark.usefixtures("tiny_network")
def test_same_seed_same_weights():
    train, val = _source(2), _source(1, seed=1)
    a, ha = train_pool_model(SPEC, train, val, _tcfg(), 3, CPU)
    b, hb = train_pool_model(SPEC, train, val, _tcfg(), 3, CPU)
    c, _ = train_pool_model(SPEC, train, val, _tcfg(), 4, CPU)
    assert ha.to_dict() == hb.to_dict() and len(ha.val_loss) == 2 and np.isfinite(ha.val_loss).all()
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.usefixtures("tiny_network")
def test_without_validation_images_the_last_epoch_is_kept():
    _, history = train_pool_model(SPEC, _source(1), CropSource.from_arrays([], []), _tcfg(max_epochs=2), 0, CPU)
    assert history.val_loss == [] and history.best_epoch == history.stopped_epoch == 2 and not history.stopped_early


def test_crops_cover_every_image_and_are_seeded():
    source = _source(3, size=40)
    cfg = _tcfg(crop_size=32, crops_per_image=2, brightness=0.3)
    data = PoolCropDataset(source, cfg, 1, seed=5, epoch=0)
    assert sorted(data.order.tolist()) == [0, 0, 1, 1, 2, 2]
    x, y, _ = data[0]
    assert x.shape == (4, 32, 32) and y.shape == (32, 32) and float(x[3].abs().sum()) == 0.0
    assert torch.equal(x, PoolCropDataset(source, cfg, 1, seed=5, epoch=0)[0][0])


# --------------------------------------------------------------------------------------------
# diversity (AD Fig. 4)
# --------------------------------------------------------------------------------------------
def test_diversity_counts():
    label = np.full((20, 20), 255, np.uint8)
    label[1:4, 1:4] = 1
    label[10:13, 10:13] = 1
    label[1:4, 10:13] = 2
    assert label_diversity(label) == (3, 2)
    background = np.where(label == 255, 0, label).astype(np.uint8)
    assert label_diversity(background) == (4, 3)
    diagonal = np.full((6, 6), 255, np.uint8)
    diagonal[0:2, 0:2] = diagonal[2:4, 2:4] = 1  # squares touching at a corner
    assert label_diversity(diagonal, connectivity=8) == (1, 1)
    assert label_diversity(diagonal, connectivity=4) == (2, 1)
    assert batch_diversity([label, background]) == {"objects_per_image": 3.5, "classes_per_image": 2.5, "batch_images": 2}


# --------------------------------------------------------------------------------------------
# report: band, Table I, Fig. 3 and 4
# --------------------------------------------------------------------------------------------
def test_t_band_on_known_values():
    mean, low, high = report.t_band([1.0, 2.0, 3.0])
    half = 4.302652729749464 / np.sqrt(3)  # t(0.975, 2) × sd 1 / sqrt(3)
    assert mean == 2.0 and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert np.isnan(report.t_band([0.5])[1]) and report.t_band([0.5])[0] == 0.5


def _synthetic_rows():
    means = {"ad": [0.4, 0.6, 0.8, 0.85], "random": [0.5, 0.5, 0.55, 0.95]}
    rows = []
    for strategy, curve in means.items():
        for seed, delta in ((0, -0.02), (1, 0.02)):
            for it, m in enumerate(curve):
                rows.append({"dataset": "toy", "strategy": strategy, "seed": seed, "iteration": it,
                             "labelled": 10 + 10 * it, "labelled_fraction": 0.1 + 0.1 * it, "miou": m + delta,
                             "objects_per_image": 2.0 + it + seed, "classes_per_image": 1.0 + seed})
    return pd.DataFrame(rows)


def test_table_one_on_synthetic_rows():
    curves = report.learning_curves(_synthetic_rows())
    assert curves["mean"].round(10).tolist()[:4] == [0.4, 0.6, 0.8, 0.85] and set(curves["seeds"]) == {2}
    table = report.threshold_table(curves, {"toy": 1.0}, thresholds=(0.5, 0.7, 0.9))
    cells = table.set_index(["strategy", "threshold"])["cell"]
    assert cells[("ad", 0.5)] == "1 (20%)" and cells[("ad", 0.7)] == "2 (30%)" and cells[("ad", 0.9)] == "not reached"
    assert cells[("random", 0.5)] == "0 (10%)" and cells[("random", 0.7)] == "3 (40%)" and cells[("random", 0.9)] == "3 (40%)"
    wide = report.threshold_table_wide(table)
    assert list(wide.columns) == ["dataset", "threshold", "target_miou", "ad", "random"] and len(wide) == 3
    with pytest.raises(DataError, match="no full-pool mIoU for dataset 'toy'"):
        report.threshold_table(curves, {}, thresholds=(0.5,))


def test_figures_and_diversity_frame():
    rows = _synthetic_rows()
    curves = report.learning_curves(rows)
    full = report.full_pool_reference(pd.DataFrame({"dataset": ["toy", "toy"], "seed": [0, 1], "miou": [0.9, 1.0]}))
    assert full == {"toy": pytest.approx(0.95)}
    for x in ("iteration", "labelled_fraction"):
        report.learning_curve_figure(curves, full, x=x).clf()
    diversity = report.diversity_curves(rows.assign(objects_per_image=lambda f: f["objects_per_image"].where(f["iteration"] < 3)))
    assert set(diversity["iteration"]) == {0, 1, 2}
    assert diversity.set_index(["strategy", "iteration"]).loc[("ad", 1), "objects_per_image"] == 3.5
    report.diversity_figure(diversity, iterations=2).clf()
