"""The report's binary NoC protocol: crop grid and its remainder rule, building-free crops excluded and
counted, RITM's click loop on a fake network whose output is known pixel for pixel, the AC / DISCA
networks on the same crops in the same rows, and the tidy table and its summary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dial_core.errors import ConfigError
from dial_core.evaluation import protocols
from dial_core.evaluation.noc import foreground_iou
from dial_core.evaluation.noc_protocol import (
    COLUMNS,
    building_crops,
    crop_name,
    keep_crops,
    network_crop_protocol,
    noc_summary,
    noc_table,
    ritm_crop_protocol,
)
from dial_core.evaluation.protocols import InteractionConfig
from dial_core.interactive.disca import DiscaConfig
from dial_core.models.ritm import click_maps
from dial_core.models.segmenter import NetworkSpec, Segmenter

# --------------------------------------------------------------------------------------------
# crops
# --------------------------------------------------------------------------------------------


def test_inria_images_tile_exactly_into_100_crops():
    windows = building_crops((5000, 5000), 500)
    assert len(windows) == 100 and len(set(windows)) == 100
    cover = np.zeros((5000, 5000), np.uint8)
    for r, c, h, w in windows:
        cover[r : r + h, c : c + w] += 1
    assert (cover == 1).all()  # every pixel in exactly one crop


def test_remainder_at_the_right_and_bottom_is_dropped():
    label = np.zeros((1100, 1250), np.uint8)
    windows = building_crops(label, 500)  # the array itself is accepted
    assert windows == [(0, 0, 500, 500), (0, 500, 500, 500), (500, 0, 500, 500), (500, 500, 500, 500)]
    assert building_crops((499, 2000), 500) == []  # smaller than a crop: none
    with pytest.raises(ValueError):
        building_crops((10, 10), 0)


def test_building_free_crops_are_excluded_and_counted():
    label = np.zeros((20, 30), np.uint8)
    label[2, 3] = 1  # crop (0, 0): one building pixel
    label[12:20, 0:10] = 255  # crop (10, 0): ignore only, no building
    label[15, 25] = 1  # crop (10, 20)
    windows = building_crops(label, 10)
    kept, excluded = keep_crops(label, windows)
    assert kept == [(0, 0, 10, 10), (10, 20, 10, 10)] and excluded == 4
    assert crop_name("austin1", kept[1]) == "austin1@10_20"


# --------------------------------------------------------------------------------------------
# RITM on a fake network: building exactly inside the positive disks and the previous mask
# --------------------------------------------------------------------------------------------

SIDE = 60  # not a multiple of 32: the protocol pads to 64 and crops back
CENTRES = [(12, 12), (12, 45), (45, 30)]  # three buildings, each exactly a radius-5 disk (81 px)
SQUARE = (slice(52, 59), slice(52, 59))  # 7×7 false positive the fake network always adds


def _crop() -> tuple[np.ndarray, np.ndarray]:
    label = np.zeros((SIDE, SIDE), np.uint8)
    label[click_maps([(r, c, True) for r, c in CENTRES], (SIDE, SIDE), 5.0)[0] > 0] = 1
    label[0, :] = 255  # an ignored row, out of every score
    image = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    return image, label


class FakeRITM(nn.Module):
    """Building where (positive disk or previous mask > 0.5) and no negative disk, plus a fixed 7×7
    false positive (erased by a negative disk); records every input."""

    def __init__(self) -> None:
        super().__init__()
        self.maps: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, image: torch.Tensor, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.shapes.append(tuple(image.shape))
        self.maps.append(maps[0, :, :SIDE, :SIDE].clone())
        bias = torch.zeros_like(maps[:, 0], dtype=torch.bool)
        bias[:, SQUARE[0], SQUARE[1]] = True
        fg = ((maps[:, 0] > 0.5) | (maps[:, 2] > 0.5) | bias) & ~(maps[:, 1] > 0.5)
        logits = torch.where(fg, 10.0, -10.0)[:, None]
        self.logits.append(logits[0, 0, :SIDE, :SIDE].clone())
        return logits, logits


TOTAL = 3 * 81  # building pixels
EXPECTED = [81 / (TOTAL + 49), 162 / (TOTAL + 49), 243 / (TOTAL + 49), 1.0]  # 3 positives, then the negative


@pytest.mark.parametrize("previous", ["mask", "probs"])
def test_ritm_clicks_feed_back_the_previous_prediction(previous):
    image, label = _crop()
    net, predictions = FakeRITM(), []
    rows = ritm_crop_protocol(net, image, label, budget=20, previous=previous, crop="c",
                              callback=lambda k, mask: predictions.append(mask.copy()))
    # the user stops once nothing is wrong: 4 clicks of the 20
    assert [r["click"] for r in rows] == [1, 2, 3, 4]
    assert [(r["click_row"], r["click_col"], r["positive"]) for r in rows] == [(*c, True) for c in CENTRES] + [(55, 55, False)]
    assert [r["iou"] for r in rows] == pytest.approx(EXPECTED, abs=0, rel=1e-12)
    assert all(np.isnan(r["iou0"]) and r["method"] == "ritm" and r["clicked"] and r["seconds"] >= 0 for r in rows)
    assert all(set(r) == set(COLUMNS) for r in rows)
    assert net.shapes == [(1, 3, 64, 64)] * 4  # padded to the size multiple
    assert not net.maps[0][2].any()  # click 1: all-zero previous mask
    for k in range(1, 4):  # click k + 1 sees the prediction after click k
        fed = net.maps[k][2].numpy()
        if previous == "mask":
            np.testing.assert_array_equal(fed, predictions[k - 1])
        else:
            np.testing.assert_allclose(fed, torch.sigmoid(net.logits[k - 1]).numpy(), rtol=1e-6)
            np.testing.assert_array_equal(fed > 0.49, predictions[k - 1].astype(bool))
        positives = [(r["click_row"], r["click_col"], True) for r in rows[: k + 1] if r["positive"]]
        np.testing.assert_array_equal(net.maps[k][0].numpy(), click_maps(positives, (SIDE, SIDE), 5.0)[0])
    for row, prediction in zip(rows, predictions):
        assert row["iou"] == foreground_iou(label, prediction)


def test_ritm_budget_is_respected():
    image, label = _crop()
    rows = ritm_crop_protocol(FakeRITM(), image, label, budget=2)
    assert [r["click"] for r in rows] == [1, 2]
    assert [r["iou"] for r in rows] == pytest.approx(EXPECTED[:2])
    with pytest.raises(ConfigError):
        ritm_crop_protocol(FakeRITM(), image, label, previous="logits")


# --------------------------------------------------------------------------------------------
# DISIR (AC) and DISCA networks on the same crops
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segmenter(one_torch_thread):
    torch.manual_seed(0)
    return Segmenter(NetworkSpec("linknet", "resnet18", 2, "per_class", "dt", 10.0))


def _cfg(method: str) -> InteractionConfig:
    disca = DiscaConfig(0.01, 1, 1.0, 0.0) if method == "disca" else DiscaConfig(0.0, 0, 0.0, 0.0)
    return InteractionConfig(method=method, agent="largest_mistake_centre", disca=disca, window=64, overlap=0, disca_window=64)


@pytest.mark.parametrize("method", ["ac", "disca"])
def test_network_rows_have_ritm_schema(segmenter, method, monkeypatch):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    label = np.zeros((64, 64), np.uint8)
    label[10:40, 20:50] = 1
    predictions = []
    original = protocols._row

    def recording(step, label_, prediction, *args, **kwargs):
        predictions.append(prediction.copy())
        return original(step, label_, prediction, *args, **kwargs)

    monkeypatch.setattr(protocols, "_row", recording)
    rows = network_crop_protocol(segmenter, image, label, method, _cfg(method), np.random.default_rng(1), budget=3, crop="x")
    assert [r["click"] for r in rows] == [1, 2, 3]
    assert all(list(r) == COLUMNS and r["method"] == method and r["crop"] == "x" and r["clicked"] for r in rows)
    assert len(predictions) == 4  # step 0 (kept as iou0) and the three clicks
    for k, row in enumerate(rows, start=1):
        assert 0.0 <= row["iou"] <= 1.0
        assert row["iou"] == pytest.approx(foreground_iou(label, predictions[k]), abs=1e-12)
        assert row["iou0"] == pytest.approx(foreground_iou(label, predictions[0]), abs=1e-12)
        assert row["positive"] == (label[row["click_row"], row["click_col"]] == 1)
    with pytest.raises(ConfigError):
        network_crop_protocol(segmenter, image, label, "disca", _cfg("ac"), np.random.default_rng(1), budget=1)


# --------------------------------------------------------------------------------------------
# table and summary
# --------------------------------------------------------------------------------------------


def _ritm_rows() -> list[dict]:
    image, label = _crop()
    rows = ritm_crop_protocol(FakeRITM(), image, label, crop="a")
    return rows + ritm_crop_protocol(FakeRITM(), image, label, budget=2, crop="b")


def test_noc_summary_keys_values_and_excluded_count():
    table = noc_table(_ritm_rows(), excluded=7)
    assert list(table.columns) == COLUMNS and table.attrs["excluded"] == 7
    summary = noc_summary(table)
    for t in (80, 85, 90):
        assert {f"noc20@{t}", f"over20@{t}", f"never20@{t}"} <= set(summary)
    assert {"n", "avg20_iou", "avg20_iou_std", "curve20_iou", "iou@1", "iou@20", "spc", "excluded", "iou0"} <= set(summary)
    assert summary["n"] == 2 and summary["excluded"] == 7 and np.isnan(summary["iou0"])
    # crop a: 0.832 at click 3, 1.0 at click 4; crop b stops at 0.555 after its budget of 2 → 20
    assert summary["noc20@80"] == pytest.approx((3 + 20) / 2)
    assert summary["noc20@90"] == pytest.approx((4 + 20) / 2)
    assert summary["avg20_iou"] == pytest.approx((1.0 + EXPECTED[1]) / 2)
    assert noc_summary(table, excluded=3)["excluded"] == 3


def test_fill_to_budget_changes_no_score_but_the_curve_length():
    rows = _ritm_rows()
    table, filled = noc_table(rows, excluded=1), noc_table(rows, excluded=1, fill_to=20)
    assert len(filled) == 40 and filled.groupby("crop")["click"].max().tolist() == [20, 20]
    assert (~filled["clicked"]).sum() == 40 - len(table)
    a, b = noc_summary(table), noc_summary(filled)
    assert a.keys() == b.keys()
    assert all(a[k] == pytest.approx(b[k], nan_ok=True) for k in a)  # spc too: seconds over the clicks made


def test_table_refuses_duplicates_and_mixed_methods():
    rows = _ritm_rows()
    with pytest.raises(ValueError):
        noc_table(rows + rows[:1])
    mixed = noc_table(rows + [{**rows[0], "method": "ac", "iou0": 0.5}])
    with pytest.raises(ValueError):
        noc_summary(mixed)
    assert noc_summary(mixed[mixed["method"] == "ac"])["iou0"] == 0.5
