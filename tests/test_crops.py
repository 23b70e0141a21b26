"""DIAL's one-annotation-per-crop protocol (Fig. 9, App. B): crop sampling, the size of the corrected
mistake, the `random_anywhere` user, one row per method with the weights restored, the step's tidy
table, and the Fig. 9 / App. B summaries on hand-made tables."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import briefly_pretrained, toy_scene

from dial_core.clicks.agents import AgentContext, next_click
from dial_core.clicks.types import Click
from dial_core.data.canonical import DatasetInfo, Sample, load_info, write_dataset
from dial_core.errors import ConfigError
from dial_core.evaluation import crops as crops_module
from dial_core.evaluation.crops import crop_protocol, crop_shape, mistake_size, sample_crops
from dial_core.evaluation.protocols import InteractionConfig
from dial_core.interactive.disca import DiscaConfig
from dial_core.interactive.inference import predict_probs
from dial_core.report.crops import appendix_b_figure, appendix_b_table, fig9_heatmap, mistake_bins
from dial_core.steps import evaluate_crops

CLASS_NAMES = ["road", "roof", "tree"]
N = len(CLASS_NAMES)
DISCA = DiscaConfig(lr=0.01, steps=2, regularisation=1.0, ac_drop_probability=0.2)


def _cfg(method: str, agent: str = "largest_mistake_centre") -> InteractionConfig:
    return InteractionConfig(method=method, agent=agent, disca=DISCA if method != "ac" else DiscaConfig(0.0, 0, 0.0, 0.0))


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def model(one_torch_thread):
    rng = np.random.default_rng(0)
    return briefly_pretrained([toy_scene(rng) for _ in range(3)], N)


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def test_sample_crops_is_seeded_and_in_bounds():
    shapes = {"a": (300, 200), "b": (100, 500), "c": (40, 60)}
    first = sample_crops(shapes, 200, 128, np.random.default_rng(3))
    assert first == sample_crops(shapes, 200, 128, np.random.default_rng(3))
    assert first != sample_crops(shapes, 200, 128, np.random.default_rng(4))
    for image_id, row, col in first:
        h, w = crop_shape(shapes[image_id], 128)
        assert 0 <= row and row + h <= shapes[image_id][0] and 0 <= col and col + w <= shapes[image_id][1]
    assert crop_shape((40, 60), 128) == (40, 60) and crop_shape((100, 500), 128) == (100, 128)
    assert {r for i, r, _ in first if i == "c"} == {0}  # smaller than the crop: the whole image


def test_sample_crops_weighs_images_by_area():
    shapes = {"big": (400, 400), "small": (100, 100)}  # 16 : 1
    picks = [i for i, _, _ in sample_crops(shapes, 3400, 64, np.random.default_rng(0))]
    assert picks.count("small") == pytest.approx(200, abs=50)


def test_sample_crops_rejects_nothing_to_sample():
    with pytest.raises(ValueError, match="no images"):
        sample_crops({}, 3, 64, np.random.default_rng(0))
    with pytest.raises(ValueError, match="image z"):
        sample_crops({"z": (0, 10)}, 3, 64, np.random.default_rng(0))


# --------------------------------------------------------------------------------------------
# the size of the corrected mistake; the random_anywhere user
# --------------------------------------------------------------------------------------------


def test_mistake_size_is_the_8_connected_error_region_of_the_click():
    label = np.zeros((10, 10), np.uint8)
    prediction = np.zeros((10, 10), np.int64)
    prediction[1:3, 1:4] = 1  # 6 px
    prediction[3, 4] = 2  # touches the block diagonally only: same region under 8-connectivity
    prediction[7:9, 7:9] = 1  # 4 px, apart
    label[8, 8] = 255  # ignored: not a mistake
    assert mistake_size(label, prediction, Click(1, 1, 0)) == 7
    assert mistake_size(label, prediction, Click(3, 4, 0)) == 7
    assert mistake_size(label, prediction, Click(7, 7, 0)) == 3
    assert mistake_size(label, prediction, Click(5, 5, 0)) == 0  # a correct pixel
    assert mistake_size(label, prediction, Click(8, 8, 0)) == 0  # an ignored one


def test_random_anywhere_may_click_a_correct_pixel_never_an_ignored_one():
    label = np.zeros((20, 20), np.uint8)
    label[:, 10:] = 1
    label[:5] = 255
    prediction = np.zeros((20, 20), np.int64)  # right on the left half, wrong on the right
    clicks = [next_click("random_anywhere", AgentContext(label, prediction, rng=np.random.default_rng(s))) for s in range(60)]
    assert all(label[k.row, k.col] != 255 and k.cls == label[k.row, k.col] for k in clicks)
    on_correct = [prediction[k.row, k.col] == label[k.row, k.col] for k in clicks]
    assert any(on_correct) and not all(on_correct)
    perfect = next_click("random_anywhere", AgentContext(label, label.astype(np.int64), rng=np.random.default_rng(0)))
    assert perfect is not None  # no ground-truth prior: a perfect crop still gets a click
    everything = {(r, c) for r in range(20) for c in range(20) if label[r, c] != 255}
    placed = [Click(r, c, int(label[r, c])) for r, c in sorted(everything)[1:]]
    last = next_click("random_anywhere", AgentContext(label, prediction, tuple(placed), np.random.default_rng(0)))
    assert (last.row, last.col) == min(everything)  # never a pixel already clicked


# --------------------------------------------------------------------------------------------
# the protocol on one crop
# --------------------------------------------------------------------------------------------


def _crop(seed: int = 100, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    image, label = toy_scene(np.random.default_rng(seed))
    return image[:size, :size], label[:size, :size]


def test_crop_protocol_rows_one_per_method_weights_restored(model):
    image, label = _crop()
    before = _state(model)
    methods = {"ac": _cfg("ac"), "disca": _cfg("disca")}
    rows = crop_protocol(model, image, label, CLASS_NAMES, "largest_mistake_centre", methods, np.random.default_rng(1))
    after = _state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert [r["method"] for r in rows] == ["ac", "disca"]
    for row in rows:
        assert row["clicked"] and row["agent"] == "largest_mistake_centre" and (row["height"], row["width"]) == (64, 64)
        assert row["gain"] == pytest.approx(row["miou1"] - row["miou0"])
        assert {f"iou0_{c}" for c in CLASS_NAMES} | {f"iou1_{c}" for c in CLASS_NAMES} <= set(row)
        assert row["mistake_share"] == pytest.approx(row["mistake_size"] / 64**2)
    ac, disca = rows
    assert ac["miou0"] == disca["miou0"] and (ac["click_row"], ac["click_col"]) == (disca["click_row"], disca["click_col"])
    # the recorded mistake is the error region of the crop's own initial prediction holding the click
    prediction0 = predict_probs(model, image, None, 64, 0)[0].argmax(0)
    click = Click(ac["click_row"], ac["click_col"], ac["click_class"])
    assert ac["mistake_size"] == mistake_size(label, prediction0, click) > 0
    assert ac["accuracy0"] == pytest.approx(float((prediction0 == label).mean()))
    # the same seed gives the same rows; the pretrained copy given by the caller gives the same too
    again = crop_protocol(model, image, label, CLASS_NAMES, "largest_mistake_centre", methods, np.random.default_rng(1),
                          pretrained=before)
    timings = ["seconds", "seconds_initial"]
    pd.testing.assert_frame_equal(pd.DataFrame(again).drop(columns=timings), pd.DataFrame(rows).drop(columns=timings))


def test_crop_protocol_on_a_known_prediction(model, monkeypatch):
    """The network replaced by a fixed prediction: the largest mistake, its size and the scores are known."""
    label = np.zeros((32, 32), np.uint8)
    label[:, 16:] = 1
    fixed = label.astype(np.int64).copy()
    fixed[0:8, 0:8] = 2  # 64 px wrong
    fixed[20:22, 20:22] = 0  # 4 px wrong
    onehot = np.eye(N, dtype=np.float32)[fixed].transpose(2, 0, 1)
    monkeypatch.setattr(crops_module, "_predict", lambda *args: onehot)
    image = np.zeros((32, 32, 3), np.uint8)
    (row,) = crop_protocol(model, image, label, CLASS_NAMES, "largest_mistake_centre", {"ac": _cfg("ac")}, np.random.default_rng(0))
    assert row["mistake_size"] == 64 and row["mistake_share"] == 64 / 1024 and row["click_on_mistake"]
    assert row["click_row"] < 8 and row["click_col"] < 8 and row["click_class"] == 0
    assert row["accuracy0"] == pytest.approx(1 - 68 / 1024)
    assert row["gain"] == 0.0 and row["miou1"] == row["miou0"]  # the fixed "network" ignores the click


def test_crop_protocol_perfect_crop_records_no_click(model):
    image, _ = _crop()
    label = predict_probs(model, image, None, 64, 0)[0].argmax(0).astype(np.uint8)  # the network is right everywhere
    rows = crop_protocol(model, image, label, CLASS_NAMES, "largest_mistake_centre",
                         {"ac": _cfg("ac"), "disca": _cfg("disca")}, np.random.default_rng(0))
    assert [(r["clicked"], r["gain"], r["mistake_size"], r["click_row"]) for r in rows] == [(False, 0.0, 0, -1)] * 2


# --------------------------------------------------------------------------------------------
# the step: a tidy table from a canonical dataset
# --------------------------------------------------------------------------------------------

CLASSES = [{"name": n, "color": c} for n, c in zip(CLASS_NAMES, ([200, 60, 60], [60, 200, 60], [60, 60, 200]))]
EVALUATION = {"agent": "largest_mistake_centre", "agent_options": {}, "max_images": None,
              "disca": {"lr": 0.01, "steps": 1, "regularisation": 1.0, "ac_drop_probability": 0.2, "window": 64}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(5)
    samples = [Sample(f"v{i}", *toy_scene(rng, size=s)) for i, s in enumerate((96, 64, 80))]
    write_dataset(root, DatasetInfo(name="toy", classes=CLASSES, ground_sampling_distance_m=None, source="test", licence="none"), samples)
    return root, load_info(root)


def test_evaluate_crops_table(dataset, model, caplog):
    root, info = dataset
    before = _state(model)
    args = (root, info, ["v0", "v1", "v2"], model, ["ac", "disca"], "random_in_mistake", {"n_crops": 6, "size": 64},
            EVALUATION, {"size": 64, "overlap": 16}, 7, "linknet")
    with caplog.at_level(logging.INFO, logger="dial_core"):
        table = evaluate_crops(*args, images=["v0", "v2"])
    assert list(table.columns[:9]) == ["protocol", "dataset", "image", "crop", "row_off", "col_off", "model", "agent", "seed"]
    assert len(table) == 12 and list(table["crop"]) == sorted(table["crop"]) and set(table["image"]) <= {"v0", "v2"}
    assert list(table["method"]) == ["ac", "disca"] * 6
    assert (table["protocol"] == "crops").all() and (table["agent"] == "random_in_mistake").all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any("6/6 crops" in r.getMessage() for r in caplog.records)
    again = evaluate_crops(*args, images=["v0", "v2"])
    columns = [c for c in table.columns if not c.startswith("seconds")]
    pd.testing.assert_frame_equal(table[columns], again[columns])


# --------------------------------------------------------------------------------------------
# Fig. 9 and App. B summaries on hand-made tables
# --------------------------------------------------------------------------------------------


def _frame(crops: list[tuple[float, float, float, float, bool]], agent: str = "largest_mistake_centre") -> pd.DataFrame:
    """(mistake_share, accuracy0, ac gain, disca gain, clicked) per crop → rows per (crop, method)."""
    rows = []
    for index, (share, accuracy, ac, disca, clicked) in enumerate(crops):
        for method, gain in (("ac", ac), ("disca", disca)):
            rows.append({"dataset": "d", "image": "i", "crop": index, "model": "m", "agent": agent, "seed": 0,
                         "method": method, "mistake_share": share, "accuracy0": accuracy, "gain": gain, "clicked": clicked})
    return pd.DataFrame(rows)


def test_mistake_bins_counts_means_and_best():
    frame = _frame([
        (0.005, 0.95, 0.02, 0.01, True),   # small mistake, high accuracy: AC better
        (0.008, 0.97, 0.04, 0.01, True),
        (0.30, 0.50, 0.01, 0.05, True),    # large mistake, low accuracy: DISCA better
        (0.50, 0.40, 0.03, 0.03, True),    # a tie in the same bin
        (0.02, 0.60, 0.01, 0.01, True),    # a tie alone in its bin
        (0.40, 0.45, 0.90, 0.90, False),   # not clicked: left out
    ])
    table = mistake_bins(frame, [0, 0.01, 0.1, 1], [0, 0.9, 1])
    assert len(table) == 6 and list(table.columns[:2]) == ["size_bin", "accuracy_bin"]
    cell = table.set_index(["size_bin", "accuracy_bin"])
    small = cell.loc[("[0, 0.01]", "(0.9, 1]")]
    assert small["n"] == 2 and small["ac_gain"] == pytest.approx(0.03) and small["disca_gain"] == pytest.approx(0.01)
    assert small["best"] == "ac" and small["disca_better"] == 0
    large = cell.loc[("(0.1, 1]", "[0, 0.9]")]
    assert large["n"] == 2 and large["disca_gain"] == pytest.approx(0.04) and large["ac_gain"] == pytest.approx(0.02)
    assert large["best"] == "disca" and large["disca_better"] == 0.5
    assert cell.loc[("(0.01, 0.1]", "[0, 0.9]")]["best"] == "tie"
    assert cell.loc[("(0.1, 1]", "(0.9, 1]")]["n"] == 0 and cell.loc[("(0.1, 1]", "(0.9, 1]")]["best"] == ""
    assert table["n"].sum() == 5
    fig = fig9_heatmap(table)
    assert "Fig. 9" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="increasing"):
        mistake_bins(frame, [0, 0.5, 0.2], [0, 1])


def test_appendix_b_table_and_figure():
    frame = pd.concat([
        _frame([(0.1, 0.8, 0.02, 0.04, True), (0.1, 0.8, 0.04, 0.06, True)], agent="largest_mistake_centre"),
        _frame([(0.0, 0.8, 0.00, 0.01, True), (0.0, 1.0, 0.0, 0.0, False), (0.1, 0.8, 0.03, 0.02, True)], agent="random_anywhere"),
    ])
    table = appendix_b_table(frame).set_index(["agent", "method"])
    assert table.loc[("largest_mistake_centre", "ac"), "mean_gain"] == pytest.approx(0.03)
    assert table.loc[("largest_mistake_centre", "disca"), "std_gain"] == pytest.approx(np.std([0.04, 0.06], ddof=1))
    assert table.loc[("random_anywhere", "disca"), "mean_gain"] == pytest.approx(0.01)  # the unclicked crop counts as 0
    assert table.loc[("random_anywhere", "ac"), "n"] == 3 and table.loc[("random_anywhere", "ac"), "n_clicked"] == 2
    fig = appendix_b_figure(frame)
    assert len(fig.axes) == 2  # both panels hold a user; uncertain_* and random_in_mistake are skipped
    assert len(appendix_b_figure(frame[frame["agent"] == "random_anywhere"]).axes) == 1
    with pytest.raises(ValueError, match="none of the App. B users"):
        appendix_b_figure(frame.assign(agent="disir"))


def test_evaluate_crops_rejects_recorded_clicks(dataset, model):
    root, info = dataset
    with pytest.raises(ConfigError, match="human"):
        evaluate_crops(root, info, ["v0"], model, ["ac"], "human", {"n_crops": 1, "size": 64}, EVALUATION,
                       {"size": 64, "overlap": 16}, 0, "linknet")
