"""RITM-style click-count metrics on hand-made IoU curves (ious[0] = IoU after click 1)."""

import numpy as np
import pytest

from dial_core.evaluation.metrics import number_of_clicks
from dial_core.evaluation.noc import (
    avg_iou,
    curve_mean_iou,
    foreground_iou,
    iou_at,
    never_reached,
    noc,
    noc_miou,
    over_budget,
    summarise,
)

FIRST = [0.9] * 20  # above every threshold from click 1
LAST = [0.5] * 19 + [0.95]  # reaches every threshold exactly at click 20
SHORT = [0.7, 0.82, 0.86, 0.88, 0.88]  # stopped after 5 clicks: 80 at 2, 85 at 3, 90 never


@pytest.mark.parametrize("t", [0.8, 0.85, 0.9])
def test_reached_at_the_first_click(t):
    assert noc(FIRST, t) == 1
    assert not over_budget(FIRST, t) and not never_reached(FIRST, t)


@pytest.mark.parametrize("t", [0.8, 0.85, 0.9])
def test_reached_exactly_at_click_20_is_over_budget_but_reached(t):
    assert noc(LAST, t) == 20
    assert over_budget(LAST, t)  # RITM's ≥20@t counts it
    assert not never_reached(LAST, t)  # the literal reading does not


def test_never_reached_and_thresholds():
    flat = [0.84] * 20
    assert noc(flat, 0.8) == 1 and noc(flat, 0.85) == 20 and noc(flat, 0.9) == 20
    assert over_budget(flat, 0.85) and never_reached(flat, 0.85)
    assert [noc(SHORT, t) for t in (0.8, 0.85, 0.9)] == [2, 3, 20]
    assert noc([0.85], 0.85) == 1  # ≥, not >


def test_budget_cuts_the_curve():
    late = [0.5] * 24 + [0.9]  # reached at click 25: beyond the budget
    assert noc(late, 0.85) == 20 and never_reached(late, 0.85) and over_budget(late, 0.85)
    assert noc(late, 0.85, budget=25) == 25
    assert noc([0.5, 0.9], 0.85, budget=1) == 1 and never_reached([0.5, 0.9], 0.85, budget=1)


def test_iou_at_holds_a_short_curve_at_its_last_value():
    assert iou_at(SHORT, 1) == 0.7 and iou_at(SHORT, 3) == 0.86
    assert iou_at(SHORT, 10) == 0.88 and iou_at(SHORT, 20) == 0.88
    assert avg_iou(LAST) == 0.95 and avg_iou(SHORT) == 0.88  # the IoU after click 20
    assert curve_mean_iou(LAST) == pytest.approx((19 * 0.5 + 0.95) / 20)
    assert curve_mean_iou(SHORT) == pytest.approx((0.7 + 0.82 + 0.86 + 17 * 0.88) / 20)
    with pytest.raises(ValueError):
        iou_at(SHORT, 0)


def test_summarise_three_curves():
    out = summarise({"a": FIRST, "b": LAST, "c": SHORT}, seconds=9.0)
    assert out["n"] == 3
    assert out["noc20@80"] == pytest.approx((1 + 20 + 2) / 3)
    assert out["noc20@85"] == pytest.approx((1 + 20 + 3) / 3)
    assert out["noc20@90"] == pytest.approx((1 + 20 + 20) / 3)
    assert out["over20@85"] == pytest.approx(1 / 3) and out["never20@85"] == 0.0
    assert out["over20@90"] == pytest.approx(2 / 3) and out["never20@90"] == pytest.approx(1 / 3)
    final = np.array([0.9, 0.95, 0.88])
    assert out["avg20_iou"] == pytest.approx(final.mean()) and out["avg20_iou_std"] == pytest.approx(final.std())
    assert out["curve20_iou"] == pytest.approx(np.mean([0.9, curve_mean_iou(LAST), curve_mean_iou(SHORT)]))
    assert out["iou@1"] == pytest.approx(0.7)
    assert out["iou@2"] == pytest.approx((0.9 + 0.5 + 0.82) / 3)
    assert out["iou@3"] == pytest.approx((0.9 + 0.5 + 0.86) / 3)
    assert out["iou@5"] == out["iou@10"] == pytest.approx((0.9 + 0.5 + 0.88) / 3)
    assert out["iou@20"] == pytest.approx(out["avg20_iou"])
    assert out["spc"] == pytest.approx(9.0 / 45)  # RITM: all clicks made, 20 + 20 + 5
    assert summarise({"a": FIRST}, seconds=9.0, clicks=30)["spc"] == pytest.approx(0.3)
    assert "spc" not in summarise({"a": FIRST})
    small = summarise({"a": SHORT}, thresholds=(0.85,), budget=5)
    assert set(small) == {"n", "noc5@85", "over5@85", "never5@85", "avg5_iou", "avg5_iou_std", "curve5_iou", "iou@1", "iou@2", "iou@3", "iou@5"}
    assert small["noc5@85"] == 3 and small["avg5_iou"] == 0.88
    with pytest.raises(ValueError):
        summarise({})


def test_foreground_iou_ignore_and_empty():
    label = np.array([[1, 1, 0, 255],
                      [1, 0, 0, 255]], np.uint8)
    pred = np.array([[1, 0, 1, 1],
                     [1, 0, 0, 1]], np.uint8)
    assert foreground_iou(label, pred) == pytest.approx(2 / 4)  # TP 2, FN 1, FP 1; predicted ignore pixels don't count
    assert foreground_iou(label, label) == 1.0
    empty = np.zeros((3, 3), np.uint8)
    assert foreground_iou(empty, empty) == 1.0  # empty union: defined as 1.0
    assert foreground_iou(np.full((2, 2), 255, np.uint8), np.ones((2, 2), np.uint8)) == 1.0
    assert foreground_iou(empty, np.eye(3, dtype=np.uint8)) == 0.0
    assert foreground_iou(np.array([[1, 2]]), np.array([[1, 2]])) == 1.0  # foreground only: class 2 is not building


def test_noc_miou_counts_from_step_0():
    curve = [0.6, 0.7, 0.86, 0.88, 0.91]  # step 0 = before any click
    assert noc_miou(curve, 0.85) == 2 == number_of_clicks(curve, 0.85, 20)
    assert noc(curve[1:], 0.85) == 2  # the same count in RITM's convention
    assert noc_miou(curve, 0.5) == 0  # reached without a click
    assert noc(curve[1:], 0.5) == 1  # RITM cannot say 0
    assert noc_miou(curve, 0.95) == 20
    long = [0.5] * 22 + [0.9]  # reached at step 22, beyond a budget of 20
    assert noc_miou(long, 0.85) == 20 and number_of_clicks(long, 0.85, 20) == 22
    assert noc_miou([0.5] * 20 + [0.9], 0.85) == 20  # reached at the last allowed click
