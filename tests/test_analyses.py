"""Sequential learning (DIAL Fig. 8), Table IV's three click placements, the DISIR user study and
the domain-adaptation control: protocol behaviour and the report rows made from the tables."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import briefly_pretrained, toy_scene

import dial_core.steps as steps
from dial_core.active.acquisition import entropy_map, patch_scores, uncertainty_order
from dial_core.clicks.agents import largest_mistake_click
from dial_core.data.tiling import tile_windows
from dial_core.errors import ConfigError
from dial_core.evaluation.protocols import click_protocol, patch_protocol
from dial_core.interactive.inference import predict_probs
from dial_core.report import analyses
from dial_core.report.reproduction import REGISTRY, dial_fig_6, dial_fig_8, dial_fig_9, dial_fig_12, dial_table_iv, disir_fig_4, load_paper_numbers

CLASS_NAMES = ["road", "roof", "tree"]
TILING = {"size": 64, "overlap": 16}


def _evaluation(n_clicks: int = 3) -> dict:
    return {"agent": "largest_mistake_centre", "max_images": None, "agent_options": {},
            "clicks": {"n_clicks": n_clicks, "methods": ["ac", "disca"]},
            "patches": {"size": 32, "max_patches": 3, "methods": ["ac", "disca"], "acquisitions": ["entropy", "random"]},
            "disca": {"lr": 0.02, "steps": 2, "regularisation": 1.0, "p0": "initial",
                      "ac_drop_probability": {"clicks": 1.0, "patches": 1.0}, "window": 32, "patch_lr_decay": "constant",
                      "calibration": {"grid": [1e-4], "clicks": 2, "agent": None}}}


@pytest.fixture(scope="module")
def model(one_torch_thread):
    rng = np.random.default_rng(0)
    return briefly_pretrained([toy_scene(rng) for _ in range(3)], len(CLASS_NAMES))


@pytest.fixture()
def scenes(monkeypatch):
    """Three validation images served to steps' readers (no dataset folder needed)."""
    rng = np.random.default_rng(7)
    scenes = {f"v{k}": toy_scene(rng) for k in range(3)}
    monkeypatch.setattr(steps, "read_image", lambda root, i: scenes[i][0])
    monkeypatch.setattr(steps, "read_label", lambda root, i: scenes[i][1])
    monkeypatch.setattr(steps, "raster_shape", lambda root, i: scenes[i][1].shape)
    return scenes


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# --- sequential learning ------------------------------------------------------------------------

def test_keep_weights_adapts_the_given_model_and_default_copies_it(model):
    image, label = toy_scene(np.random.default_rng(11))
    cfg = steps.interaction_config("disca", _evaluation(), TILING)
    before = _state(model)
    click_protocol(model, image, label, CLASS_NAMES, 2, cfg, np.random.default_rng(0))
    assert _equal(before, _state(model))  # re-initialised: the caller's weights are untouched
    import copy
    carried = copy.deepcopy(model)
    click_protocol(carried, image, label, CLASS_NAMES, 2, cfg, np.random.default_rng(0), keep_weights=True)
    assert not _equal(before, _state(carried))  # sequential: the adapted weights stay in the model


def test_sequential_evaluation_carries_weights_in_order_and_leaves_the_model(model, scenes, tmp_path):
    info = SimpleNamespace(name="toy", class_names=CLASS_NAMES)
    ids = list(scenes)
    before = _state(model)
    kept = steps.evaluate_clicks(tmp_path, info, ids, model, "disca", _evaluation(), TILING, 0, "net", sequential=True)
    reinit = steps.evaluate_clicks(tmp_path, info, ids, model, "disca", _evaluation(), TILING, 0, "net")
    assert _equal(before, _state(model))
    assert {"position", "weights"} <= set(kept.columns) and "position" not in reinit
    assert kept.groupby("image")["position"].first().to_dict() == {"v0": 0, "v1": 1, "v2": 2}
    initial = lambda t: t[t["step"] == 0].set_index("image")["miou"]  # noqa: E731
    # the first image starts from the pretrained weights either way; the next ones from the adapted ones
    assert initial(kept)["v0"] == pytest.approx(initial(reinit)["v0"])
    assert (initial(kept)[["v1", "v2"]] != initial(reinit)[["v1", "v2"]]).any()
    with pytest.raises(ConfigError, match="ac does not adapt"):
        steps.evaluate_clicks(tmp_path, info, ids, model, "ac", _evaluation(), TILING, 0, "net", sequential=True)


def _curve(image: str, miou: list[float], **columns) -> pd.DataFrame:
    return pd.DataFrame({"image": image, "step": range(len(miou)), "miou": miou, **columns})


def test_sequential_report_rows_and_summary():
    keys = {"train_dataset": "a", "dataset": "b", "model": "net", "method": "disca"}
    reinit = pd.concat([_curve("x", [0.5, 0.6], **keys), _curve("y", [0.4, 0.6], **keys)])
    kept = pd.concat([_curve("x", [0.5, 0.6], position=0, **keys), _curve("y", [0.6, 0.65], position=1, **keys)])
    rows = {r["metric"]: r for r in dial_fig_8({"sequential": kept, "transfer": reinit}, "net")}
    # only the second image counts: +20 points initially, +5 after the clicks (read at our last step, 1)
    assert rows["initial_miou_sequential_minus_reinitialised"]["value"] == pytest.approx(20)
    assert rows["miou_sequential_minus_reinitialised"]["value"] == pytest.approx(5)
    assert rows["miou_sequential_minus_reinitialised"]["ours_at"] == "clicks=1"
    frame = analyses.sequential_frame(kept, reinit)
    assert set(frame["weights"]) == {"sequential", "reinitialised"}
    assert frame.loc[frame["weights"] == "reinitialised"].groupby("image")["position"].first().to_dict() == {"x": 0, "y": 1}
    summary = analyses.sequential_summary(frame, 10).set_index("image")
    assert summary.loc["y", "initial: sequential − reinitialised"] == pytest.approx(20)
    assert summary.loc["x", "after 1: sequential − reinitialised"] == pytest.approx(0)
    analyses.sequential_figure(frame)  # draws both panels


# --- Table IV: random patches, entropy patches, the whole image -----------------------------------

def test_table_iv_three_placements(model):
    image, label = toy_scene(np.random.default_rng(5), size=96)
    ev = _evaluation(n_clicks=3)
    cfg = steps.interaction_config("ac", ev, TILING, "patches")
    windows = tile_windows(96, 96, 32, 0)
    probs, _ = predict_probs(model, image, None, TILING["size"], TILING["overlap"])
    tables = {}
    for acquisition in ("random", "entropy"):
        rows = pd.DataFrame(patch_protocol(model, image, label, CLASS_NAMES, 32, acquisition, cfg,
                                           np.random.default_rng(0), max_patches=3))
        clicked = rows[rows["click_row"] >= 0]
        # one annotation per patch, inside the patch, never twice in the same patch
        assert clicked["patch"].is_unique
        for _, r in clicked.iterrows():
            top, left, h, w = windows[int(r["patch"])]
            assert top <= r["click_row"] < top + h and left <= r["click_col"] < left + w
        tables[acquisition] = rows.assign(acquisition=acquisition)
    # entropy patches are the three most uncertain ones, in order; random ones follow the seeded permutation
    assert list(tables["entropy"]["patch"][1:]) == uncertainty_order(patch_scores(entropy_map(probs), windows))[:3]
    assert list(tables["random"]["patch"][1:]) != list(tables["entropy"]["patch"][1:])
    # the whole image: the first click is the centre of the largest mistake anywhere
    whole = pd.DataFrame(click_protocol(model, image, label, CLASS_NAMES, 3, steps.interaction_config("ac", ev, TILING),
                                        np.random.default_rng(0)))
    first = largest_mistake_click(label, probs.argmax(0))
    assert (whole.loc[1, "click_row"], whole.loc[1, "click_col"]) == (first.row, first.col)
    patches = pd.concat(tables.values()).assign(model="net", method="ac", image="i")
    rows = dial_table_iv({"patches": patches, "clicks": whole.assign(model="net", method="ac", image="i")}, "net")
    settings = {r["setting"] for r in rows}
    assert settings == {"patches=0", "patches=10; acquisition=random", "patches=10; acquisition=entropy", "clicks=10"}


# --- DISIR Fig. 4 users and the Fig. 6 control ----------------------------------------------------

def _user_curve(dependent: bool, gains: dict[str, float], miou_gain: float) -> pd.DataFrame:
    before = {f"iou_{c}": 0.5 for c in ("car", "building")}
    after = {f"iou_{c}": 0.5 + g for c, g in gains.items()}
    return pd.DataFrame([{"image": "i", "step": 0, "miou": 0.5, "corrected_pixels": 0, **before},
                         {"image": "i", "step": 2, "miou": 0.5 + miou_gain, "corrected_pixels": 40, **after}]).assign(
        user="dep" if dependent else "indep", class_dependent=dependent, agent="disir", model="net", method="ac")


def test_user_study_rows_and_per_class_table():
    users = pd.concat([_user_curve(False, {"car": 0.01, "building": 0.10}, 0.06),
                       _user_curve(True, {"car": 0.08, "building": 0.02}, 0.04)])
    clicks = users[users["class_dependent"] == False].assign(agent="largest_mistake_centre")  # noqa: E712
    rows = {(r["metric"], r["setting"]): r["value"] for r in disir_fig_4({"clicks": clicks, "users": users}, "net")}
    assert rows[("miou_gain_independent_minus_dependent", "clicks=120")] == pytest.approx(2)
    assert rows[("iou_gain_dependent_minus_independent", "clicks=120; class=car")] == pytest.approx(7)
    table = analyses.per_class_gains(users, 12).set_index(["user", "class"])
    assert table.loc[("dep", "car"), "gain"] == pytest.approx(8)
    assert table.loc[("indep", "mean (mIoU)"), "corrected_pixels_per_click"] == pytest.approx(20)
    analyses.users_figure(users, 12)


def test_control_row_uses_the_transfer_images_only():
    keys = {"train_dataset": "a", "dataset": "b", "model": "net"}
    transfer = pd.concat([_curve("x", [0.3, 0.5], method="ac", **keys), _curve("x", [0.3, 0.6], method="disca", **keys)])
    control = pd.concat([_curve("x", [0.7, 0.72], method="ac", dataset="b", model="net"),
                         _curve("other", [0.1, 0.2], method="ac", dataset="b", model="net")])
    rows = {(r["method"], r["metric"]): r for r in dial_fig_6({"transfer": transfer, "control": control}, "net")}
    assert rows[("disca", "miou")]["value"] == pytest.approx(60)
    # DISCA after our last click minus the network trained on the target, on the transfer images only
    assert rows[("disca", "miou_minus_control")]["value"] == pytest.approx(-10)
    assert rows[("disca", "miou_minus_control")]["ours_at"] == "clicks=1; control 70"
    frame = analyses.control_frame(transfer, control)
    summary = analyses.control_summary(frame, 20).set_index("curve")
    assert summary.loc["control: trained on b (ac)", "miou_initial"] == pytest.approx(70)
    analyses.control_figure(frame)


# --- Fig. 9 / App. B rows and every analysis row's key ---------------------------------------------

def _crops() -> pd.DataFrame:
    """Eight crops by two users: DISCA wins by 4 points on the large-mistake / low-accuracy quarter."""
    rows = []
    for agent in ("largest_mistake_centre", "random_anywhere"):
        for crop in range(8):
            large = crop >= 6  # the top quarter of mistake share, also the lowest accuracy
            for method, gain in (("ac", 0.02), ("disca", 0.06 if large else 0.01)):
                rows.append({"model": "net", "image": "i", "crop": crop, "agent": agent, "method": method, "clicked": True,
                             "mistake_share": 0.3 if large else 0.01 * (crop + 1), "accuracy0": 0.5 if large else 0.9, "gain": gain})
    return pd.DataFrame(rows)


def test_fig9_and_appendix_b_rows():
    rows = {r["setting"]: r for r in dial_fig_9({"crops": _crops()}, "net")}
    assert rows["annotations=1; crops=largest_mistakes"]["value"] == pytest.approx(4)
    assert rows["annotations=1; crops=lowest_accuracy"]["value"] == pytest.approx(4)
    assert "2 crops" in rows["annotations=1; crops=lowest_accuracy"]["ours_at"]
    fig12 = {(r["method"], r["setting"]): r["value"] for r in dial_fig_12({"crops": _crops()}, "net")}
    assert fig12[("ac", "annotations=1; agent=random_anywhere")] == pytest.approx(2)
    assert fig12[("disca", "annotations=1; agent=random_anywhere")] == pytest.approx(100 * (6 * 0.01 + 2 * 0.06) / 8)


def test_analysis_rows_use_the_papers_keys():
    """Every row an analysis item returns names a (method, metric, setting) its item has in the data file."""
    keys = {"train_dataset": "a", "dataset": "b", "model": "net", "method": "disca"}
    users = pd.concat([_user_curve(False, {"car": 0.01, "building": 0.1}, 0.06), _user_curve(True, {"car": 0.08, "building": 0.02}, 0.04)])
    tables = {"crops": _crops(), "users": users, "clicks": users[users["user"] == "indep"],
              "sequential": pd.concat([_curve("x", [0.5, 0.6], position=0, **keys), _curve("y", [0.6, 0.65], position=1, **keys)]),
              "transfer": pd.concat([_curve("x", [0.5, 0.6], **keys), _curve("y", [0.4, 0.6], **keys)]),
              "control": _curve("x", [0.7, 0.72], method="ac", dataset="b", model="net")}
    paper = load_paper_numbers()
    for item_id in ("DISIR Fig. 4", "DIAL Fig. 6", "DIAL Fig. 8", "DIAL Fig. 9", "DIAL Fig. 11", "DIAL Fig. 12"):
        wanted = set(map(tuple, paper.loc[paper["item"] == item_id, ["method", "metric", "setting"]].to_numpy()))
        rows = REGISTRY[item_id].ours(tables, "net")
        assert rows, item_id
        for row in rows:
            assert (row["method"], row["metric"], row["setting"]) in wanted, (item_id, row)
