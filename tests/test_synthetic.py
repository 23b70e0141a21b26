"""Tests for the synthetic aerial scene generator (dial_core.data.synthetic)."""

import numpy as np
import pytest
from scipy import ndimage

from dial_core.data.synthetic import (
    BUILDINGS_CLASSES,
    DOMAINS,
    POTSDAM_CLASSES,
    Domain,
    buildings_only,
    generate_scene,
)
from dial_core.errors import ConfigError

SIZE = 256
SEEDS = range(8)
POTSDAM_SHARES = np.array([0.29, 0.27, 0.23, 0.15, 0.017, 0.03])


def _batch(domain: str, seeds=SEEDS, size: int = SIZE):
    return [generate_scene(size, domain, np.random.default_rng(s)) for s in seeds]


@pytest.fixture(scope="module")
def batch_a():
    return _batch("A")


@pytest.fixture(scope="module")
def batch_b():
    return _batch("B")


def _shares(batch) -> np.ndarray:
    return np.mean([np.bincount(lab.ravel(), minlength=6)[:6] / lab.size for _, lab in batch], axis=0)


def test_class_tables():
    assert [c["name"] for c in POTSDAM_CLASSES] == [
        "impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter"]
    assert POTSDAM_CLASSES[1]["color"] == [0, 0, 255] and POTSDAM_CLASSES[5]["color"] == [255, 0, 0]
    assert [c["name"] for c in BUILDINGS_CLASSES] == ["background", "building"]
    assert {"A", "B"} <= set(DOMAINS)
    for name, dom in DOMAINS.items():
        assert isinstance(dom, Domain) and dom.name == name and dom.ground_sampling_distance_m > 0


@pytest.mark.parametrize("domain", ["A", "B"])
def test_shapes_dtypes_values(domain):
    for size in (64, 100, 256):
        image, label = generate_scene(size, domain, np.random.default_rng(3))
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert label.shape == (size, size) and label.dtype == np.uint8
        assert label.max() <= 5


@pytest.mark.parametrize("domain", ["A", "B"])
def test_deterministic_per_seed(domain):
    img1, lab1 = generate_scene(SIZE, domain, np.random.default_rng(42))
    img2, lab2 = generate_scene(SIZE, domain, np.random.default_rng(42))
    np.testing.assert_array_equal(img1, img2)
    np.testing.assert_array_equal(lab1, lab2)
    img3, lab3 = generate_scene(SIZE, domain, np.random.default_rng(43))
    assert not np.array_equal(lab1, lab3)
    assert np.abs(img1.astype(int) - img3.astype(int)).mean() > 5


def test_generator_state_is_the_only_randomness():
    """Two scenes drawn in sequence from one generator differ, and the sequence reproduces."""
    rng = np.random.default_rng(7)
    first, second = generate_scene(SIZE, "A", rng), generate_scene(SIZE, "A", rng)
    assert not np.array_equal(first[1], second[1])
    rng = np.random.default_rng(7)
    generate_scene(SIZE, "A", rng)
    np.testing.assert_array_equal(generate_scene(SIZE, "A", rng)[0], second[0])


@pytest.mark.parametrize("which", ["A", "B"])
def test_every_class_present(which, batch_a, batch_b):
    batch = batch_a if which == "A" else batch_b
    counts = sum(np.bincount(lab.ravel(), minlength=6) for _, lab in batch)
    assert counts.size == 6 and (counts > 0).all(), counts


@pytest.mark.parametrize("which", ["A", "B"])
def test_class_shares_close_to_potsdam(which, batch_a, batch_b):
    shares = _shares(batch_a if which == "A" else batch_b)
    assert np.all(np.abs(shares - POTSDAM_SHARES) < 0.10), shares
    assert 0.003 < shares[4] < 0.05, shares  # cars are rare
    assert 0.005 < shares[5] < 0.08, shares  # clutter too


def test_domains_differ_in_colour_and_scale(batch_a, batch_b):
    mean_a = np.mean([img.reshape(-1, 3).mean(0) for img, _ in batch_a], axis=0)
    mean_b = np.mean([img.reshape(-1, 3).mean(0) for img, _ in batch_b], axis=0)
    assert np.abs(mean_a - mean_b).max() > 10, (mean_a, mean_b)

    def mean_building_area(batch):
        areas = [np.bincount(ndimage.label(lab == 1)[0].ravel())[1:] for _, lab in batch]
        return np.concatenate(areas).mean()

    gsd_ratio = DOMAINS["B"].ground_sampling_distance_m / DOMAINS["A"].ground_sampling_distance_m
    assert gsd_ratio != 1
    ratio = mean_building_area(batch_a) / mean_building_area(batch_b)
    # B pixels are coarser, so its buildings cover fewer pixels (about gsd_ratio ** 2 fewer).
    assert ratio > 1.5, ratio


def test_low_vegetation_and_trees_are_confusable_by_colour(batch_a):
    """A nearest-class-mean classifier on RGB alone must not separate grass from trees well,
    nor the six classes: networks have to use texture and context, and still make errors."""
    rgb = np.concatenate([img.reshape(-1, 3) for img, _ in batch_a]).astype(np.float64)
    lab = np.concatenate([l.ravel() for _, l in batch_a])
    means = np.stack([rgb[lab == c].mean(0) for c in range(6)])
    pred = np.argmin(((rgb[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == lab).mean() < 0.8
    veg = (lab == 2) | (lab == 3)
    d2 = ((rgb[veg][:, None, :] - means[None, [2, 3]]) ** 2).sum(-1)
    accuracy = (np.where(d2.argmin(1) == 0, 2, 3) == lab[veg]).mean()
    assert 0.5 < accuracy < 0.9, accuracy


def test_trees_occlude_other_classes(batch_a):
    """Tree crowns lie over roads and next to buildings (label = tree where the crown is)."""
    touching_building = touching_road = 0
    for _, lab in batch_a:
        tree = lab == 3
        grown = ndimage.binary_dilation(tree)
        touching_building += int((grown & (lab == 1)).sum())
        touching_road += int((grown & (lab == 0)).sum())
    assert touching_building > 0 and touching_road > 0


def test_image_has_texture_and_soft_edges(batch_a):
    image, label = batch_a[0]
    grey = image.astype(np.float64).mean(-1)
    inside = ndimage.binary_erosion(label == 2, iterations=3)
    assert grey[inside].std() > 2  # not flat colour
    # Blur: few adjacent-pixel jumps are as large as the class contrast.
    jumps = np.abs(np.diff(grey, axis=1))
    assert np.percentile(jumps, 99) < 60


def test_buildings_only_mapping():
    label = np.array([[0, 1, 2, 3], [4, 5, 255, 1]], np.uint8)
    out = buildings_only(label)
    np.testing.assert_array_equal(out, np.array([[0, 1, 0, 0], [0, 0, 255, 1]], np.uint8))
    assert out.dtype == np.uint8 and label[1, 2] == 255  # input untouched
    _, scene_label = generate_scene(64, "A", np.random.default_rng(0))
    np.testing.assert_array_equal(buildings_only(scene_label) == 1, scene_label == 1)


def test_unknown_domain_raises_config_error():
    with pytest.raises(ConfigError) as err:
        generate_scene(SIZE, "Z", np.random.default_rng(0))
    message = str(err.value)
    assert "'Z'" in message and "A" in message and "B" in message


@pytest.mark.parametrize("size", [0, 32, 63])
def test_too_small_size_raises_config_error(size):
    with pytest.raises(ConfigError, match=str(size)):
        generate_scene(size, "A", np.random.default_rng(0))
