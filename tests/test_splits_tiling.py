"""Tests for the seeded train/val split, nested training subsets and the evaluation window grid."""

import math

import numpy as np
import pandas as pd
import pytest

from dial_core.data.splits import nested_subset, split_train_val
from dial_core.data.tiling import TILE_COLUMNS, tile_index, tile_windows
from dial_core.errors import ConfigError


def _ids(n: int) -> list[str]:
    return [f"img_{i:03d}" for i in range(n)]


# --------------------------------------------------------------------------------------------
# split_train_val
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"),
    [
        (10, 0.2, 2),
        (24, 0.2, 5),  # Potsdam: 4.8 -> 5, the papers' 19/5
        (180, 0.2, 36),  # INRIA: 144/36
        (7, 0.2, 1),  # 1.4 -> 1
        (13, 0.2, 3),  # 2.6 -> 3
        (2, 0.2, 1),  # 0.4 -> 0, but at least one image is held out
        (3, 0.9, 2),  # 2.7 -> 3, but at least one image stays for training
    ],
)
def test_split_sizes(n, fraction, n_val):
    split = split_train_val(_ids(n), fraction, seed=0)
    assert len(split["val"]) == n_val
    assert len(split["train"]) == n - n_val


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_disjoint_and_complete(seed):
    ids = _ids(23)
    split = split_train_val(ids, 0.2, seed)
    assert set(split) == {"train", "val"}
    assert not set(split["train"]) & set(split["val"])
    assert sorted(split["train"] + split["val"]) == sorted(ids)
    assert len(set(split["train"])) == len(split["train"])
    assert split["train"] == sorted(split["train"]) and split["val"] == sorted(split["val"])


def test_split_is_seeded_and_deterministic():
    ids = _ids(20)
    assert split_train_val(ids, 0.2, 3) == split_train_val(list(ids), 0.2, 3)


def test_split_independent_of_input_order():
    ids = _ids(20)
    shuffled = list(np.random.default_rng(42).permutation(ids))
    assert shuffled != ids
    assert split_train_val(shuffled, 0.2, 5) == split_train_val(ids, 0.2, 5)
    assert split_train_val(ids[::-1], 0.2, 5) == split_train_val(ids, 0.2, 5)


def test_split_different_seeds_differ():
    ids = _ids(20)
    vals = {tuple(split_train_val(ids, 0.2, seed)["val"]) for seed in range(5)}
    assert len(vals) > 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fraction_outside_open_interval(fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        split_train_val(_ids(10), fraction, 0)


@pytest.mark.parametrize("n", [0, 1])
def test_split_needs_two_images(n):
    with pytest.raises(ConfigError, match="at least 2"):
        split_train_val(_ids(n), 0.2, 0)


# --------------------------------------------------------------------------------------------
# nested_subset
# --------------------------------------------------------------------------------------------


def test_nested_subsets_are_nested_and_ceil_sized():
    ids = _ids(19)
    fractions = [0.1, 0.2, 0.5, 0.75, 1.0]
    subsets = [nested_subset(ids, f, seed=4) for f in fractions]
    for f, subset in zip(fractions, subsets):
        assert len(subset) == math.ceil(f * len(ids))
        assert set(subset) <= set(ids)
        assert len(set(subset)) == len(subset)
    for small, big in zip(subsets, subsets[1:]):
        assert set(small) <= set(big)
    assert sorted(subsets[-1]) == sorted(ids)


def test_nested_subset_at_least_one_and_seeded():
    ids = _ids(5)
    assert len(nested_subset(ids, 0.01, 0)) == 1
    assert nested_subset(ids, 0.4, 2) == nested_subset(ids[::-1], 0.4, 2)
    picks = {tuple(nested_subset(_ids(30), 0.2, s)) for s in range(5)}
    assert len(picks) > 1


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.01])
def test_nested_subset_rejects_bad_fraction(fraction):
    with pytest.raises(ConfigError):
        nested_subset(_ids(5), fraction, 0)


# --------------------------------------------------------------------------------------------
# tile_windows / tile_index
# --------------------------------------------------------------------------------------------

GRIDS = [
    (100, 100, 32, 8),
    (256, 256, 64, 16),  # exact fit: no extra flush window
    (97, 130, 32, 0),
    (64, 200, 64, 32),
    (33, 33, 32, 31),
]


@pytest.mark.parametrize(("height", "width", "size", "overlap"), GRIDS)
def test_windows_cover_every_pixel_inside_image(height, width, size, overlap):
    windows = tile_windows(height, width, size, overlap)
    coverage = np.zeros((height, width), dtype=int)
    for r, c, h, w in windows:
        assert (h, w) == (min(size, height), min(size, width))
        assert 0 <= r and r + h <= height and 0 <= c and c + w <= width
        coverage[r : r + h, c : c + w] += 1
    assert coverage.min() >= 1
    assert len(set(windows)) == len(windows)


def _axis_offsets(windows, axis):
    return sorted({w[axis] for w in windows})


@pytest.mark.parametrize(("height", "width", "size", "overlap"), GRIDS)
def test_neighbour_overlap_equals_parameter_except_last(height, width, size, overlap):
    windows = tile_windows(height, width, size, overlap)
    for axis, length in ((0, height), (1, width)):
        offsets = _axis_offsets(windows, axis)
        assert offsets[0] == 0
        if length > size:
            assert offsets[-1] + size == length  # the last window is flush with the border
        steps = np.diff(offsets)
        # all neighbours but the last pair overlap by exactly `overlap`
        assert np.all(steps[:-1] == size - overlap)
        if steps.size:
            # the last (flush) window overlaps by at least `overlap`
            assert 0 < steps[-1] <= size - overlap


def test_exact_fit_grid_has_regular_stride():
    windows = tile_windows(256, 256, 64, 16)
    assert _axis_offsets(windows, 0) == [0, 48, 96, 144, 192]
    assert len(windows) == 25


def test_non_overlapping_grid_example():
    assert tile_windows(100, 64, 32, 0) == [
        (r, c, 32, 32) for r in (0, 32, 64, 68) for c in (0, 32)
    ]


@pytest.mark.parametrize(("height", "width"), [(20, 30), (64, 64), (1, 1)])
def test_image_smaller_than_window_gives_one_clipped_window(height, width):
    assert tile_windows(height, width, 64, 16) == [(0, 0, height, width)]


def test_image_thinner_than_window_gives_one_row_of_clipped_windows():
    windows = tile_windows(10, 100, 64, 16)
    assert windows == [(0, 0, 10, 64), (0, 36, 10, 64)]


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (-32, 0), (32, 32), (32, 40), (32, -1)])
def test_bad_size_or_overlap_raises(size, overlap):
    with pytest.raises(ConfigError, match="tiling"):
        tile_windows(100, 100, size, overlap)


def test_tile_index_layout():
    shapes = {"a": (100, 100), "b": (40, 70), "c": (64, 64)}
    split = {"train": ["a", "c"], "val": ["b"]}
    frame = tile_index(shapes, split, 64, 16)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == TILE_COLUMNS == ["id", "split", "row_off", "col_off", "height", "width"]
    for image_id, (h, w) in shapes.items():
        rows = frame[frame["id"] == image_id]
        expected = tile_windows(h, w, 64, 16)
        assert len(rows) == len(expected)
        assert list(map(tuple, rows[["row_off", "col_off", "height", "width"]].to_numpy())) == expected
    assert set(frame.loc[frame["id"] == "b", "split"]) == {"val"}
    assert set(frame.loc[frame["id"].isin(["a", "c"]), "split"]) == {"train"}
    assert len(frame) == 4 + 2 + 1  # a: 2x2, b: 1 row x 2 cols, c: 1


def test_tile_index_rejects_bad_tiling():
    with pytest.raises(ConfigError):
        tile_index({"a": (10, 10)}, {"train": ["a"]}, 32, 32)
