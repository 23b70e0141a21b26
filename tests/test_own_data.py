"""A researcher's own data, library level: mask styles, bands, ground resolution, splits and blocks.

The same cases run through Snakemake in tests/test_own_data_workflow.py.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from dial_core.data.adapters import prepare_dataset, source_files
from dial_core.data.blocks import block_windows, cut_into_blocks
from dial_core.data.canonical import load_info, read_image, read_label, write_dataset
from dial_core.data.splits import grouped_split, listed_split, make_split, read_name_list, split_train_val
from dial_core.errors import ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _tif(path: Path, bands: np.ndarray, transform=None, crs=None, interp=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "height": bands.shape[1], "width": bands.shape[2], "count": bands.shape[0], "dtype": bands.dtype.name}
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(bands)
            if interp:
                dst.colorinterp = interp
    return path


def _image(seed: int, shape=(32, 40), count=3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def _buildings(seed: int, shape=(32, 40)) -> np.ndarray:
    """0/255 building mask: a few rectangles of 255 on 0."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for _ in range(3):
        r, c = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
        mask[r:r + 8, c:c + 10] = 255
    return mask


def _convert(options: dict, out: Path, name: str = "mine"):
    info, sources, groups = prepare_dataset("folder", options, name)
    info.groups = groups
    return write_dataset(out, info, sources)


VALUE_CLASSES = [{"name": "background", "value": 0}, {"name": "building", "value": 255}]


# ------------------------------------------------------------------------------------ mask styles


def test_zero_255_masks_make_255_a_class(tmp_path, caplog):
    images, masks = tmp_path / "images", tmp_path / "masks"
    truth = {}
    for i in range(2):
        Image.fromarray(np.moveaxis(_image(i), 0, -1)).save(images.mkdir(exist_ok=True) or images / f"chip_{i}.png")
        truth[f"chip_{i}"] = _buildings(i)
        Image.fromarray(truth[f"chip_{i}"]).save(masks.mkdir(exist_ok=True) or masks / f"chip_{i}.png")
    with caplog.at_level(logging.INFO):
        info = _convert({"images": str(images), "masks": str(masks), "classes": VALUE_CLASSES}, tmp_path / "out")
    assert "mask value 255 is class 'building'" in caplog.text
    for image_id, mask in truth.items():
        np.testing.assert_array_equal(read_label(tmp_path / "out", image_id), (mask == 255).astype(np.uint8))
    assert info.class_shares["building"] > 0


def test_undeclared_255_says_what_it_may_mean(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    _tif(images / "a.tif", _image(0))
    _tif(masks / "a.tif", _buildings(0)[None])
    options = {"images": str(images), "masks": str(masks), "classes": [{"name": "background", "value": 0}, {"name": "building", "value": 1}]}
    with pytest.raises(DataError, match=r"masks.a\.tif.*value 255: \d+ pixels.*0/255 masks.*value: 255.*ignore_values"):
        _convert(options, tmp_path / "out")
    # declared as ignore, 255 becomes the canonical ignore index
    _convert({**options, "ignore_values": [255]}, tmp_path / "out2")
    assert set(np.unique(read_label(tmp_path / "out2", "a"))) == {0, 255}


def test_grey_level_rgb_masks_are_read_as_values(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    values = np.random.default_rng(3).choice([0, 1, 2], (32, 40)).astype(np.uint8)
    _tif(images / "drone.tif", _image(1))
    Image.fromarray(np.repeat(values[..., None], 3, axis=-1)).save(masks.mkdir() or masks / "drone.png")  # R = G = B
    classes = [{"name": "soil", "value": 0}, {"name": "crop", "value": 1}, {"name": "weed", "value": 2}]
    _convert({"images": str(images), "masks": str(masks), "classes": classes}, tmp_path / "out")
    np.testing.assert_array_equal(read_label(tmp_path / "out", "drone"), values)


def test_palette_png_masks_by_index_or_by_colour(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    index = np.random.default_rng(4).choice([0, 1, 2], (32, 40)).astype(np.uint8)
    _tif(images / "p.tif", _image(2))
    palette_image = Image.fromarray(index, mode="P")
    palette_image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    palette_image.save(masks.mkdir() or masks / "p.png")
    by_value = [{"name": "a", "value": 0}, {"name": "b", "value": 1}, {"name": "c", "value": 2}]
    _convert({"images": str(images), "masks": str(masks), "classes": by_value}, tmp_path / "v")
    np.testing.assert_array_equal(read_label(tmp_path / "v", "p"), index)
    by_colour = [{"name": "a", "color": [0, 0, 0]}, {"name": "b", "color": [0, 0, 255]}, {"name": "c", "color": [255, 0, 0]}]
    _convert({"images": str(images), "masks": str(masks), "classes": by_colour}, tmp_path / "c")
    np.testing.assert_array_equal(read_label(tmp_path / "c", "p"), np.array([0, 2, 1], np.uint8)[index])


def test_integer_geotiff_masks_of_another_type(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    values = np.random.default_rng(5).choice([0, 3, 300], (32, 40)).astype(np.uint16)
    _tif(images / "t.tif", _image(3))
    _tif(masks / "t.tif", values[None])
    classes = [{"name": "a", "value": 0}, {"name": "b", "value": 3}]
    with pytest.raises(DataError, match=r"value 300"):
        _convert({"images": str(images), "masks": str(masks), "classes": classes}, tmp_path / "out")


# ------------------------------------------------------------------------------------------- bands


def test_four_band_image_needs_bands_or_fails_clearly(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    pixels = _image(6, count=4)  # R, G, B, near-infrared: GDAL calls band 4 "alpha" unless told otherwise
    _tif(images / "rgbn.tif", pixels)
    _tif(masks / "rgbn.tif", _buildings(1)[None])
    options = {"images": str(images), "masks": str(masks), "classes": VALUE_CLASSES}
    with pytest.raises(DataError, match=r"rgbn\.tif has 4 bands.*dataset\.folder\.bands: \[1, 2, 3\]"):
        _convert(options, tmp_path / "out")
    _convert({**options, "bands": [4, 1, 2]}, tmp_path / "out")
    np.testing.assert_array_equal(read_image(tmp_path / "out", "rgbn"), np.moveaxis(pixels[[3, 0, 1]], 0, -1))
    with pytest.raises(DataError, match=r"bands = \[1, 2, 5\] must name three"):
        _convert({**options, "bands": [1, 2, 5]}, tmp_path / "bad")
    # six bands (e.g. a multispectral stack), no band option: the same clear error, listing the bands
    _tif(images / "rgbn.tif", _image(6, count=6))
    with pytest.raises(DataError, match=r"6 bands \(1: \w+, 2: \w+.*dataset\.folder\.bands"):
        _convert(options, tmp_path / "out3")


def test_alpha_band_is_dropped_with_a_log_line(tmp_path, caplog):
    images, masks = tmp_path / "images", tmp_path / "masks"
    pixels = _image(7, count=4)
    pixels[3] = np.where(pixels[3] > 20, 255, 0)  # a real alpha band: opaque or transparent
    _tif(images / "rgba.tif", pixels, interp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha])
    _tif(masks / "rgba.tif", _buildings(2)[None])
    with caplog.at_level(logging.INFO):
        _convert({"images": str(images), "masks": str(masks), "classes": VALUE_CLASSES}, tmp_path / "out")
    assert "band 4 is alpha" in caplog.text
    np.testing.assert_array_equal(read_image(tmp_path / "out", "rgba"), np.moveaxis(pixels[:3], 0, -1))


# ------------------------------------------------------------------------------- ground resolution


@pytest.mark.parametrize(
    ("crs", "pixel", "gsd_m", "expected", "source"),
    [
        ("EPSG:32633", 0.3, None, 0.3, "GeoTIFF transform"),
        ("EPSG:32633", 0.3, 0.5, 0.3, "GeoTIFF transform"),  # the transform wins over params
        ("EPSG:2263", 1.0, None, 0.3048006, "GeoTIFF transform"),  # US survey feet, converted
        ("EPSG:4326", 1e-5, 0.25, 0.25, "dataset.folder.gsd_m"),  # degrees: params
        (None, None, None, None, None),
    ],
)
def test_ground_resolution_from_projected_transform_else_params(tmp_path, crs, pixel, gsd_m, expected, source):
    images, masks = tmp_path / "images", tmp_path / "masks"
    transform = from_origin(500_000, 5_000_000, pixel, pixel) if pixel else None
    _tif(images / "g.tif", _image(8), transform, crs)
    _tif(masks / "g.tif", _buildings(3)[None], transform, crs)
    _convert({"images": str(images), "masks": str(masks), "classes": VALUE_CLASSES, "gsd_m": gsd_m}, tmp_path / "out")
    info = load_info(tmp_path / "out")
    assert info.ground_sampling_distance_m == (pytest.approx(expected, rel=1e-6) if expected else None)
    assert (info.ground_sampling_distance_from or "").startswith(source or "")
    assert (info.ground_sampling_distance_from is None) == (source is None)


# ---------------------------------------------------------------------------------------- splits


def test_validation_subfolder_is_a_predefined_group(tmp_path):
    root = tmp_path / "data"
    for part, names in (("train", ["a", "b", "c"]), ("val", ["d"])):
        for i, name in enumerate(names):
            _tif(root / part / "images" / f"{name}.tif", _image(i))
            _tif(root / part / "masks" / f"{name}.tif", _buildings(i)[None])
    options = {"images": str(root / "train/images"), "masks": str(root / "train/masks"), "classes": VALUE_CLASSES,
               "val_images": str(root / "val/images"), "val_masks": str(root / "val/masks")}
    info = _convert(options, tmp_path / "out")
    assert info.groups == {"train": ["a", "b", "c"], "val": ["d"]}
    assert make_split(info.groups, "predefined", 0.2, 0) == {"train": ["a", "b", "c"], "val": ["d"]}
    with pytest.raises(ConfigError, match="split.mode: predefined"):
        make_split(info.groups, "random", 0.2, 0)  # the val folder would silently be left out
    _tif(root / "val/images/a.tif", _image(9))
    _tif(root / "val/masks/a.tif", _buildings(9)[None])
    with pytest.raises(DataError, match="a occur in both"):
        _convert(options, tmp_path / "out2")


def test_group_pattern_keeps_scenes_on_one_side():
    ids = [f"scene{s}_{i:02d}" for s in range(5) for i in range(6)]
    for seed in range(10):
        split = grouped_split(ids, 0.2, seed, r"^(scene\d+)_\d+$")
        scenes = {side: {i.split("_")[0] for i in split[side]} for side in ("train", "val")}
        assert not scenes["train"] & scenes["val"]
        assert len(split["val"]) == 6 and sorted(split["train"] + split["val"]) == sorted(ids)
        assert split["grouping"]["val_groups"] == sorted(scenes["val"])
    assert grouped_split(ids, 0.2, 3, r"^(scene\d+)") == grouped_split(list(reversed(ids)), 0.2, 3, r"^(scene\d+)")
    with pytest.raises(ConfigError, match=r"does not match image 'other'"):
        grouped_split([*ids, "other"], 0.2, 0, r"^(scene\d+)_")
    with pytest.raises(ConfigError, match="one group"):
        grouped_split(ids, 0.2, 0, r"scene")
    with pytest.raises(ConfigError, match="not a regular expression"):
        grouped_split(ids, 0.2, 0, r"(")


def test_list_split_by_ids_or_file_names():
    ids = ["chip_1", "chip_2", "chip_3", "scene_a"]
    names = read_name_list("# validation chips\nchip_2.tif\n\nscene a.png  # a stem with a space\n")
    assert listed_split(ids, names, "val.txt") == {"train": ["chip_1", "chip_3"], "val": ["chip_2", "scene_a"]}
    with pytest.raises(ConfigError, match=r"val\.txt names 1 image\(s\) the dataset does not have \(nope\)"):
        listed_split(ids, ["nope"], "val.txt")
    with pytest.raises(ConfigError, match="every image"):
        listed_split(ids, ids, "val.txt")
    with pytest.raises(ConfigError, match="needs split.val_list"):
        make_split({"train": ids}, "list", 0.2, 0)


def test_one_image_dataset_names_the_options():
    with pytest.raises(ConfigError, match=r"has 1.*split\.mode: blocks.*split\.val_list.*val_images"):
        split_train_val(["scene"], 0.2, 0)


def test_block_windows_leave_buffers_and_short_edges_out():
    windows = block_windows(1000, 700, 256, 32)
    # rows start at 0, 288, 576 (and 864 would be 136 px: kept, >= 128); columns 0, 288 (576: 124 px, dropped)
    assert [(r, h) for i, j, r, c, h, w in windows if j == 0] == [(0, 256), (288, 256), (576, 256), (864, 136)]
    assert sorted({(c, w) for *_, c, h, w in [(i, j, r, c, h, w) for i, j, r, c, h, w in windows]}) == [(0, 256), (288, 256)]
    for a in windows:
        for b in windows:
            if a is not b:  # at least `buffer` pixels between any two blocks
                gap_rows = max(b[2] - (a[2] + a[4]), a[2] - (b[2] + b[4]))
                gap_cols = max(b[3] - (a[3] + a[5]), a[3] - (b[3] + b[5]))
                assert max(gap_rows, gap_cols) >= 32
    with pytest.raises(ConfigError, match="split.blocks"):
        block_windows(100, 100, 16, 0)


def test_cut_into_blocks_reads_the_scene_windows(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    transform = from_origin(600_000, 5_000_000, 0.5, 0.5)
    pixels, mask = _image(10, (300, 200)), _buildings(10, (300, 200))
    _tif(images / "scene.tif", pixels, transform, "EPSG:32633")
    _tif(masks / "scene.tif", mask[None], transform, "EPSG:32633")
    info, sources, groups = prepare_dataset("folder", {"images": str(images), "masks": str(masks), "classes": VALUE_CLASSES}, "one")
    sources, groups, info.blocks = cut_into_blocks(sources, groups, 100, 16)
    info.groups = groups
    written = write_dataset(tmp_path / "out", info, sources)
    assert written.images == ["scene_r00_c00", "scene_r00_c01", "scene_r01_c00", "scene_r01_c01", "scene_r02_c00", "scene_r02_c01"]
    assert load_info(tmp_path / "out").groups == {"train": written.images}
    block = written.blocks["scene_r01_c01"]  # starts every 116 px; the last column is 84 px wide (>= 50: kept)
    assert block == {"scene": "scene", "row_off": 116, "col_off": 116, "height": 100, "width": 84}
    np.testing.assert_array_equal(read_image(tmp_path / "out", "scene_r01_c01"), np.moveaxis(pixels[:, 116:216, 116:200], 0, -1))
    np.testing.assert_array_equal(read_label(tmp_path / "out", "scene_r01_c01"), (mask[116:216, 116:200] == 255).astype(np.uint8))
    with rasterio.open(tmp_path / "out" / "images" / "scene_r01_c01.tif") as src:
        assert src.transform.c == pytest.approx(600_000 + 116 * 0.5) and src.transform.f == pytest.approx(5_000_000 - 116 * 0.5)
    split = make_split(written.groups, "blocks", 0.34, 0)
    assert len(split["val"]) == 2 and not set(split["val"]) & set(split["train"])


# -------------------------------------------------------------------------------- raw source files


def test_source_files_list_raw_files_but_not_partial_downloads(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("a.tif", "sub/b.png", ".hidden.tif", "c.7z.part", "c.7z.part.json"):
        (tmp_path / "imgs" / name).write_bytes(b"x")
    files = source_files("folder", {"images": str(tmp_path / "imgs"), "masks": str(tmp_path / "imgs"), "val_images": None})
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["imgs/a.tif", "imgs/sub/b.png"]
    assert source_files("synthetic", {"n_images": 3}) == []
    assert source_files("dubai", {"path": str(tmp_path / "missing")}) == []
