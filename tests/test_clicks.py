"""Tests for click encodings (annotation channels) and ground-truth click sampling."""

import numpy as np
import pytest

from dial_core.clicks.encoding import encode_clicks
from dial_core.clicks.sampling import balancing_weights, sample_clicks, sample_training_clicks
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError

SHAPE = (40, 50)


def _dist_grid(row: int, col: int, shape=SHAPE) -> np.ndarray:
    rr, cc = np.indices(shape)
    return np.hypot(rr - row, cc - col)


# --------------------------------------------------------------------------------------------
# encode_clicks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["binary", "dt"])
def test_encoding_shape_and_dtype(encoding):
    out = encode_clicks([Click(3, 4, 1)], SHAPE, 4, encoding, 5.0)
    assert out.shape == (4, *SHAPE)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("encoding", ["binary", "dt"])
def test_no_clicks_gives_zero_channels(encoding):
    out = encode_clicks([], SHAPE, 3, encoding, 5.0)
    assert out.shape == (3, *SHAPE) and not out.any()


def test_binary_disk():
    radius = 3.0
    out = encode_clicks([Click(20, 25, 0)], SHAPE, 2, "binary", radius)
    d = _dist_grid(20, 25)
    np.testing.assert_array_equal(out[0], (d <= radius).astype(np.float32))
    assert out[0, 20, 25] == 1.0
    assert out[0, 23, 25] == 1.0  # exactly at the radius
    assert out[0, 24, 25] == 0.0
    assert out[0, 23, 27] == 0.0  # sqrt(9 + 4) > 3
    assert set(np.unique(out[0])) == {0.0, 1.0}
    assert out[0].sum() == 29  # lattice points in a disk of radius 3


def test_dt_cone():
    radius = 10.0
    out = encode_clicks([Click(20, 25, 1)], SHAPE, 3, "dt", radius)
    cone = out[1]
    assert cone[20, 25] == pytest.approx(1.0)
    assert cone[20, 30] == pytest.approx(0.5)  # 1 - 5 / 10
    assert cone[26, 33] == pytest.approx(0.0)  # distance exactly 10
    d = _dist_grid(20, 25)
    np.testing.assert_allclose(cone, np.clip(1 - d / radius, 0, 1), atol=1e-6)
    # strictly decreasing along a ray while inside the radius, zero beyond
    ray = cone[20, 25:36]
    assert np.all(np.diff(ray[:11]) < 0)
    assert np.all(cone[d >= radius] == 0)
    assert np.all(cone[d < radius] > 0)


def test_dt_two_clicks_same_class_take_nearest():
    out = encode_clicks([Click(10, 10, 0), Click(10, 30, 0)], SHAPE, 2, "dt", 8.0)
    assert out[0, 10, 10] == pytest.approx(1.0) and out[0, 10, 30] == pytest.approx(1.0)
    assert out[0, 10, 14] == pytest.approx(0.5) and out[0, 10, 26] == pytest.approx(0.5)
    assert out[0, 10, 20] == 0.0  # 10 px from both


@pytest.mark.parametrize("encoding", ["binary", "dt"])
def test_each_click_only_in_its_own_channel(encoding):
    clicks = [Click(10, 10, 0), Click(12, 14, 2)]  # close together: disks overlap spatially
    out = encode_clicks(clicks, SHAPE, 4, encoding, 6.0)
    alone0 = encode_clicks(clicks[:1], SHAPE, 4, encoding, 6.0)
    alone2 = encode_clicks(clicks[1:], SHAPE, 4, encoding, 6.0)
    np.testing.assert_array_equal(out[0], alone0[0])
    np.testing.assert_array_equal(out[2], alone2[2])
    assert not out[1].any() and not out[3].any()
    assert out[0, 10, 10] == 1.0 and out[2, 12, 14] == 1.0
    # (12, 19) lies within the class-2 disk only: nothing of it leaks into channel 0
    assert out[0, 12, 19] == 0.0 and out[2, 12, 19] > 0.0
    assert out[2, 6, 8] == 0.0 and out[0, 6, 8] > 0.0


@pytest.mark.parametrize("encoding", ["binary", "dt"])
def test_clicks_outside_shape_are_ignored(encoding):
    clicks = [Click(-1, 5, 0), Click(5, -3, 1), Click(40, 0, 0), Click(0, 50, 1), Click(100, 100, 1)]
    out = encode_clicks(clicks, SHAPE, 2, encoding, 5.0)
    assert not out.any()
    inside = encode_clicks([*clicks, Click(39, 49, 1)], SHAPE, 2, encoding, 5.0)
    assert not inside[0].any() and inside[1, 39, 49] == 1.0


def test_bad_encoding_raises():
    with pytest.raises(ConfigError, match="encoding"):
        encode_clicks([Click(1, 1, 0)], SHAPE, 2, "gaussian", 5.0)


@pytest.mark.parametrize("radius", [0, -1.0])
@pytest.mark.parametrize("encoding", ["binary", "dt"])
def test_bad_radius_raises(encoding, radius):
    with pytest.raises(ConfigError, match="radius"):
        encode_clicks([Click(1, 1, 0)], SHAPE, 2, encoding, radius)


def test_click_class_out_of_range_raises():
    with pytest.raises(ValueError):
        encode_clicks([Click(1, 1, 2)], SHAPE, 2, "dt", 5.0)


# --------------------------------------------------------------------------------------------
# balancing_weights
# --------------------------------------------------------------------------------------------


def test_balancing_weights_inverse_share():
    w = balancing_weights([0.5, 0.25, 0.2, 0.05], True)
    np.testing.assert_allclose(w, [2.0, 4.0, 5.0, 20.0])


def test_balancing_weights_zero_share_gives_zero():
    w = balancing_weights([0.6, 0.0, 0.4], True)
    np.testing.assert_allclose(w, [1 / 0.6, 0.0, 2.5])
    assert np.all(np.isfinite(w))


def test_balancing_disabled_gives_ones():
    w = balancing_weights([0.6, 0.0, 0.4], False)
    np.testing.assert_array_equal(w, np.ones(3))


# --------------------------------------------------------------------------------------------
# sample_clicks / sample_training_clicks
# --------------------------------------------------------------------------------------------


def _label_with_ignore(seed=0, shape=(30, 30)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, shape).astype(np.uint8)
    label[:10, :] = 255
    return label


def test_sample_clicks_on_labelled_pixels_only():
    label = _label_with_ignore()
    rng = np.random.default_rng(1)
    for _ in range(50):
        clicks = sample_clicks(label, 25, np.ones(3), rng)
        assert len(clicks) == 25
        positions = [(c.row, c.col) for c in clicks]
        assert len(set(positions)) == len(positions)
        for c in clicks:
            assert label[c.row, c.col] != 255
            assert c.cls == label[c.row, c.col]
            assert c.row >= 10


def test_sample_clicks_custom_ignore_index():
    label = np.zeros((10, 10), np.uint8)
    label[:, 5:] = 1
    clicks = sample_clicks(label, 100, np.ones(2), np.random.default_rng(0), ignore_index=1)
    assert len(clicks) == 50 and all(c.col < 5 and c.cls == 0 for c in clicks)


def test_sample_clicks_zero_weight_class_never_drawn_and_caps_count():
    label = np.zeros((10, 10), np.uint8)
    label[:, :3] = 1  # 30 px of class 1, 70 of class 0 (weight 0)
    rng = np.random.default_rng(2)
    clicks = sample_clicks(label, 500, np.array([0.0, 1.0]), rng)
    assert len(clicks) == 30
    assert all(c.cls == 1 for c in clicks)
    assert len({(c.row, c.col) for c in clicks}) == 30


def test_sample_clicks_degenerate_cases():
    rng = np.random.default_rng(0)
    label = _label_with_ignore()
    assert sample_clicks(label, 0, np.ones(3), rng) == []
    assert sample_clicks(np.full((5, 5), 255, np.uint8), 3, np.ones(3), rng) == []
    assert sample_clicks(label, 3, np.zeros(3), rng) == []


def test_sample_clicks_is_seeded():
    label = _label_with_ignore()
    a = sample_clicks(label, 10, np.ones(3), np.random.default_rng(9))
    b = sample_clicks(label, 10, np.ones(3), np.random.default_rng(9))
    c = sample_clicks(label, 10, np.ones(3), np.random.default_rng(10))
    assert a == b and a != c


def _rare_label() -> tuple[np.ndarray, np.ndarray]:
    label = np.zeros((100, 100), np.uint8)
    label[40:50, 40:50] = 1  # 1 % of the pixels
    shares = np.bincount(label.ravel(), minlength=2) / label.size
    return label, shares


def test_balancing_draws_rare_class_as_often_as_common():
    label, shares = _rare_label()
    assert shares[1] == pytest.approx(0.01)
    weights = balancing_weights(shares, True)
    rng = np.random.default_rng(123)
    draws = [sample_clicks(label, 1, weights, rng)[0].cls for _ in range(2000)]
    rare = np.mean(np.array(draws) == 1)
    assert 0.42 < rare < 0.58


def test_without_balancing_rare_class_drawn_at_its_share():
    label, shares = _rare_label()
    weights = balancing_weights(shares, False)
    rng = np.random.default_rng(321)
    draws = [sample_clicks(label, 1, weights, rng)[0].cls for _ in range(3000)]
    rare = np.mean(np.array(draws) == 1)
    assert 0.0 < rare < 0.025


def test_training_clicks_probability_zero_never_clicks():
    label = _label_with_ignore()
    rng = np.random.default_rng(0)
    assert all(sample_training_clicks(label, np.ones(3), rng, 0.0, 10) == [] for _ in range(200))


def test_training_clicks_probability_one_always_clicks_within_max():
    label = _label_with_ignore()
    rng = np.random.default_rng(0)
    counts = [len(sample_training_clicks(label, np.ones(3), rng, 1.0, 4)) for _ in range(300)]
    assert min(counts) >= 1 and max(counts) <= 4
    assert set(counts) == {1, 2, 3, 4}  # k ~ U{1..max}


def test_training_clicks_probability_half():
    label = _label_with_ignore()
    rng = np.random.default_rng(5)
    counts = np.array([len(sample_training_clicks(label, np.ones(3), rng, 0.5, 3)) for _ in range(1000)])
    assert 0.42 < np.mean(counts > 0) < 0.58
    assert counts.max() <= 3


def test_training_clicks_respect_ignore():
    label = _label_with_ignore()
    rng = np.random.default_rng(3)
    for _ in range(50):
        for c in sample_training_clicks(label, np.ones(3), rng, 1.0, 30):
            assert label[c.row, c.col] == c.cls != 255
