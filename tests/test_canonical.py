"""Tests for the canonical dataset format (dial_core.data.canonical) on tiny generated rasters."""

import hashlib
import json
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from dial_core.data.canonical import (
    DatasetInfo,
    Sample,
    class_shares,
    load_info,
    raster_shape,
    read_image,
    read_label,
    write_dataset,
)
from dial_core.errors import DataError

CLASSES = [
    {"name": "ground", "color": [255, 255, 255]},
    {"name": "building", "color": [0, 0, 255]},
    {"name": "car", "color": [255, 255, 0]},
]
pytestmark = [
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]

with warnings.catch_warnings():  # rasterio's own use of Affine `*` warns on new affine releases
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    TRANSFORM = from_origin(368_000.0, 5_810_000.0, 0.05, 0.05)
CRS_CODE = "EPSG:25833"


def _info() -> DatasetInfo:
    return DatasetInfo(name="tiny", classes=[dict(c) for c in CLASSES], ground_sampling_distance_m=0.05,
                       source="generated", licence="CC0")


def _samples(seed: int = 0, shape=(40, 56)):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(3):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        label = rng.integers(0, 3, shape).astype(np.uint8)
        label[:3, :5] = 255  # some ignore pixels
        out.append(Sample(f"tile_{i}", image, label, TRANSFORM, CRS_CODE))
    return out


@pytest.fixture()
def dataset(tmp_path):
    samples = _samples()
    info = write_dataset(tmp_path, _info(), samples)
    return tmp_path, info, samples


def test_round_trip_keeps_pixels(dataset):
    root, info, samples = dataset
    assert info.images == [s.image_id for s in samples]
    for s in samples:
        image = read_image(root, s.image_id)
        label = read_label(root, s.image_id)
        assert image.dtype == np.uint8 and image.shape == s.image.shape
        assert label.dtype == np.uint8 and label.shape == s.label.shape
        np.testing.assert_array_equal(image, s.image)
        np.testing.assert_array_equal(label, s.label)
        assert raster_shape(root, s.image_id) == s.label.shape


def test_round_trip_keeps_crs_and_transform(dataset):
    root, _, samples = dataset
    for kind in ("images", "labels"):
        with rasterio.open(root / kind / f"{samples[0].image_id}.tif") as src:
            assert src.crs == CRS.from_epsg(25833)
            assert src.transform.almost_equals(TRANSFORM)
            assert src.dtypes[0] == "uint8"
            assert src.count == (3 if kind == "images" else 1)


def test_dataset_json_contents(dataset):
    root, info, samples = dataset
    raw = json.loads((root / "dataset.json").read_text())
    assert raw["name"] == "tiny"
    assert raw["ignore_index"] == 255
    assert raw["images"] == ["tile_0", "tile_1", "tile_2"]
    shares = raw["class_shares"]
    assert list(shares) == ["ground", "building", "car"]
    assert sum(shares.values()) == pytest.approx(1.0)
    labels = np.stack([s.label for s in samples])
    valid = labels[labels != 255]
    expected = np.bincount(valid, minlength=3) / valid.size
    np.testing.assert_allclose([shares[c["name"]] for c in CLASSES], expected)
    # one checksum per written file, and it is the file's sha256
    assert set(raw["checksums"]) == {f"{k}/tile_{i}.tif" for i in range(3) for k in ("images", "labels")}
    for rel, digest in raw["checksums"].items():
        assert digest == hashlib.sha256((root / rel).read_bytes()).hexdigest()


def test_load_info_round_trip(dataset):
    root, info, _ = dataset
    loaded = load_info(root)
    assert loaded == info
    assert loaded.n_classes == 3
    assert loaded.class_names == ["ground", "building", "car"]


def test_class_shares_over_subset(dataset):
    root, _, samples = dataset
    shares = class_shares(root, ["tile_1", "tile_2"], 3)
    labels = np.stack([samples[1].label, samples[2].label])
    valid = labels[labels != 255]
    np.testing.assert_allclose(shares, np.bincount(valid, minlength=3) / valid.size)
    assert shares.sum() == pytest.approx(1.0)


def test_class_shares_all_ignore_is_zero(tmp_path):
    label = np.full((8, 8), 255, np.uint8)
    write_dataset(tmp_path, _info(), [Sample("x", np.zeros((8, 8, 3), np.uint8), label)])
    np.testing.assert_array_equal(class_shares(tmp_path, ["x"], 3), np.zeros(3))


def test_windowed_read_returns_sub_array(dataset):
    root, _, samples = dataset
    s = samples[1]
    window = Window(col_off=7, row_off=5, width=20, height=11)
    np.testing.assert_array_equal(read_image(root, s.image_id, window), s.image[5:16, 7:27])
    np.testing.assert_array_equal(read_label(root, s.image_id, window), s.label[5:16, 7:27])


def test_large_raster_is_tiled_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
    label = rng.integers(0, 3, (300, 260)).astype(np.uint8)
    write_dataset(tmp_path, _info(), [Sample("big", image, label)])
    with rasterio.open(tmp_path / "images" / "big.tif") as src:
        assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
    np.testing.assert_array_equal(read_image(tmp_path, "big"), image)
    np.testing.assert_array_equal(read_label(tmp_path, "big", Window(250, 280, 10, 20)), label[280:300, 250:260])


def test_shape_mismatch_names_image(tmp_path):
    bad = Sample("mismatched_7", np.zeros((10, 12, 3), np.uint8), np.zeros((10, 11), np.uint8))
    with pytest.raises(DataError, match="mismatched_7"):
        write_dataset(tmp_path, _info(), [bad])
    assert not (tmp_path / "dataset.json").exists()


def test_label_value_not_a_class(tmp_path):
    label = np.zeros((10, 10), np.uint8)
    label[4, 4] = 3  # n_classes = 3: valid ids are 0..2
    bad = Sample("odd_label", np.zeros((10, 10, 3), np.uint8), label)
    with pytest.raises(DataError, match="odd_label") as err:
        write_dataset(tmp_path, _info(), [bad])
    assert "3" in str(err.value)
    assert not (tmp_path / "dataset.json").exists()


def test_ignore_value_is_not_a_bad_label(tmp_path):
    label = np.full((10, 10), 255, np.uint8)
    label[0, 0] = 2
    info = write_dataset(tmp_path, _info(), [Sample("ok", np.zeros((10, 10, 3), np.uint8), label)])
    assert info.class_shares == {"ground": 0.0, "building": 0.0, "car": 1.0}


def test_no_samples_is_an_error(tmp_path):
    with pytest.raises(DataError):
        write_dataset(tmp_path, _info(), [])


def test_missing_dataset_json(tmp_path):
    with pytest.raises(DataError, match="dataset.json"):
        load_info(tmp_path)


def test_corrupt_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match="dataset.json"):
        load_info(tmp_path)


def test_missing_image_file(dataset):
    root, _, _ = dataset
    with pytest.raises(DataError, match="nope.tif"):
        read_image(root, "nope")


def test_garbage_tif_names_the_file(dataset):
    root, _, _ = dataset
    path = root / "images" / "tile_0.tif"
    path.write_bytes(b"this is not a tiff" * 50)
    with pytest.raises(DataError, match="tile_0.tif"):
        read_image(root, "tile_0")


def test_truncated_tif_names_the_file(dataset):
    root, _, _ = dataset
    path = root / "labels" / "tile_2.tif"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"labels.tile_2\.tif"):
        read_label(root, "tile_2")
    with pytest.raises(DataError, match="tile_2.tif"):
        class_shares(root, ["tile_0", "tile_2"], 3)


def test_raster_shape_of_corrupt_tif_raises_data_error(dataset):
    root, _, _ = dataset
    (root / "images" / "tile_1.tif").write_bytes(b"garbage" * 100)
    with pytest.raises(DataError, match="tile_1.tif"):
        raster_shape(root, "tile_1")
