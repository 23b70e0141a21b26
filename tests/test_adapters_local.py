"""Potsdam, Dubai and local-folder adapters on tiny files generated in the real formats and layouts,
and windowed canonical writing of RasterSources."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from dial_core.data import canonical
from dial_core.data.adapters import ADAPTERS, prepare_dataset
from dial_core.data.canonical import DatasetInfo, RasterSource, load_info, read_image, read_label, write_dataset
from dial_core.errors import ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

SIZE = 96
GSD = 0.05
UTM = "EPSG:32633"
POTSDAM_RGB = {0: (255, 255, 255), 1: (0, 0, 255), 2: (0, 255, 255), 3: (0, 255, 0), 4: (255, 255, 0), 5: (255, 0, 0),
               255: (0, 0, 0)}
TILES = ("2_10", "2_11", "2_13")  # two official train tiles, one test tile


def _transform(tile: str):
    r, c = (int(v) for v in tile.split("_"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return from_origin(366_000.0 + c * SIZE * GSD, 5_808_000.0 - r * SIZE * GSD, GSD, GSD)


def _write_tif(path: Path, bands: np.ndarray, transform=None, crs=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "height": bands.shape[1], "width": bands.shape[2], "count": bands.shape[0], "dtype": "uint8"}
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
    return path


def _class_map(seed: int, shape=(SIZE, SIZE)) -> np.ndarray:
    """Blocky class ids 0..5 with a black (ignore) boundary strip, like the real labels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 6, (shape[0] // 8 + 1, shape[1] // 8 + 1))
    ids = np.kron(coarse, np.ones((8, 8), int))[: shape[0], : shape[1]]
    ids[:, 40:42] = 255
    return ids


def _colours(ids: np.ndarray, table=POTSDAM_RGB) -> np.ndarray:
    out = np.zeros((*ids.shape, 3), np.uint8)
    for value, rgb in table.items():
        out[ids == value] = rgb
    return out


def _image(seed: int, shape=(SIZE, SIZE)) -> np.ndarray:
    return np.random.default_rng(100 + seed).integers(0, 256, (3, *shape), dtype=np.uint8)


def _potsdam_folders(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Extracted layout: 2_Ortho_RGB/…_RGB.tif and 5_Labels_all/…_label.tif; returns {tile: (image, ids)}."""
    truth = {}
    for seed, tile in enumerate(TILES):
        image, ids = _image(seed), _class_map(seed)
        _write_tif(root / "2_Ortho_RGB" / f"top_potsdam_{tile}_RGB.tif", image, _transform(tile), UTM)
        _write_tif(root / "5_Labels_all" / f"top_potsdam_{tile}_label.tif", np.moveaxis(_colours(ids), -1, 0),
                   _transform(tile), UTM)
        truth[tile] = (image, ids)
    return truth


def _potsdam_zips(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    staging = root / "staging"
    truth = _potsdam_folders(staging)
    root.mkdir(exist_ok=True)
    with zipfile.ZipFile(root / "2_Ortho_RGB.zip", "w") as zf:
        for tile in TILES:
            zf.write(staging / "2_Ortho_RGB" / f"top_potsdam_{tile}_RGB.tif", f"2_Ortho_RGB/top_potsdam_{tile}_RGB.tif")
    with zipfile.ZipFile(root / "5_Labels_all.zip", "w") as zf:
        for tile in TILES:
            zf.write(staging / "5_Labels_all" / f"top_potsdam_{tile}_label.tif", f"top_potsdam_{tile}_label.tif")
    import shutil

    shutil.rmtree(staging)
    return truth


def _convert(root: Path, out: Path, **options):
    info, sources, groups = prepare_dataset("potsdam", {"path": str(root), **options}, "potsdam")
    info.groups = groups
    return write_dataset(out, info, sources), groups


# ------------------------------------------------------------------------------------------- Potsdam


def test_potsdam_from_extracted_folders(tmp_path):
    truth = _potsdam_folders(tmp_path / "raw")
    info, groups = _convert(tmp_path / "raw", tmp_path / "out", tiles=list(TILES))
    assert info.images == ["potsdam_2_10", "potsdam_2_11", "potsdam_2_13"]
    assert info.class_names == ["impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter"]
    assert info.ground_sampling_distance_m == 0.05
    for tile, (image, ids) in truth.items():
        np.testing.assert_array_equal(read_image(tmp_path / "out", f"potsdam_{tile}"), np.moveaxis(image, 0, -1))
        np.testing.assert_array_equal(read_label(tmp_path / "out", f"potsdam_{tile}"), ids)  # black -> 255
        with rasterio.open(tmp_path / "out" / "labels" / f"potsdam_{tile}.tif") as src:
            assert src.crs == CRS.from_epsg(32633) and src.transform.almost_equals(_transform(tile))
    # split groups: the official train/test tiles among those selected
    assert groups == {"train": ["potsdam_2_10", "potsdam_2_11"], "test": ["potsdam_2_13"]}
    raw = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert raw["groups"] == groups
    # checksums are those of the source files, keyed relative to their common parent
    assert set(raw["checksums"]) == {f"2_Ortho_RGB/top_potsdam_{t}_RGB.tif" for t in TILES} | {
        f"5_Labels_all/top_potsdam_{t}_label.tif" for t in TILES}
    rel = "5_Labels_all/top_potsdam_2_11_label.tif"
    assert raw["checksums"][rel] == hashlib.sha256((tmp_path / "raw" / rel).read_bytes()).hexdigest()


@pytest.fixture()
def tiles_option():
    return {"tiles": list(TILES)}


def test_potsdam_default_tiles_need_all_38(tmp_path):
    _potsdam_folders(tmp_path / "raw")
    with pytest.raises(DataError, match=r"top_potsdam_3_10_RGB\.tif.*ISPRS"):
        prepare_dataset("potsdam", {"path": str(tmp_path / "raw"), "tiles": "train"}, "p")


def test_potsdam_from_zips(tmp_path):
    pytest.importorskip("dial_core.data.archives")
    truth = _potsdam_zips(tmp_path / "raw")
    info, groups = _convert(tmp_path / "raw", tmp_path / "out", tiles=list(TILES), extract_dir=str(tmp_path / "ex"))
    assert (tmp_path / "ex").is_dir()
    for tile, (_, ids) in truth.items():
        np.testing.assert_array_equal(read_label(tmp_path / "out", f"potsdam_{tile}"), ids)
    assert groups["test"] == ["potsdam_2_13"]
    # a second run reuses the extraction (and still works with the zips gone)
    for archive in ("2_Ortho_RGB.zip", "5_Labels_all.zip"):
        (tmp_path / "raw" / archive).unlink()
    info2, _ = _convert(tmp_path / "raw", tmp_path / "out2", tiles=list(TILES), extract_dir=str(tmp_path / "ex"))
    assert info2.class_shares == info.class_shares


def test_potsdam_zip_extracts_only_selected_tiles(tmp_path):
    pytest.importorskip("dial_core.data.archives")
    _potsdam_zips(tmp_path / "raw")
    _convert(tmp_path / "raw", tmp_path / "out", tiles=["2_13"])  # default extract_dir: <path>/extracted
    extracted = sorted(p.name for p in (tmp_path / "raw" / "extracted").rglob("*.tif"))
    assert extracted == ["top_potsdam_2_13_RGB.tif", "top_potsdam_2_13_label.tif"]


def test_potsdam_unknown_colour_names_file_and_colour(tmp_path, tiles_option):
    _potsdam_folders(tmp_path / "raw")
    path = tmp_path / "raw" / "5_Labels_all" / "top_potsdam_2_11_label.tif"
    colours = _colours(_class_map(1))
    colours[10:12, 10:15] = (252, 255, 0)  # 10 off-palette pixels
    _write_tif(path, np.moveaxis(colours, -1, 0), _transform("2_11"), UTM)
    with pytest.raises(DataError) as err:
        _convert(tmp_path / "raw", tmp_path / "out", **tiles_option)
    text = str(err.value)
    assert "top_potsdam_2_11_label.tif" in text and "(252, 255, 0)" in text and "#FCFF00" in text
    assert "10 pixels" in text and "map it to ignore (255)" in text
    assert not (tmp_path / "out" / "dataset.json").exists()
    # exclude_tiles leaves the faulty tile out
    info, _ = _convert(tmp_path / "raw", tmp_path / "out", **tiles_option, exclude_tiles=["2_11"])
    assert info.images == ["potsdam_2_10", "potsdam_2_13"]


def test_potsdam_size_mismatch(tmp_path, tiles_option):
    _potsdam_folders(tmp_path / "raw")
    path = tmp_path / "raw" / "5_Labels_all" / "top_potsdam_2_10_label.tif"
    _write_tif(path, np.moveaxis(_colours(_class_map(0, (SIZE, 80))), -1, 0), _transform("2_10"), UTM)
    with pytest.raises(DataError) as err:
        _convert(tmp_path / "raw", tmp_path / "out", **tiles_option)
    assert "96×96" in str(err.value) and "96×80" in str(err.value) and "potsdam_2_10" in str(err.value)


def test_potsdam_georeferencing_mismatch(tmp_path, tiles_option):
    _potsdam_folders(tmp_path / "raw")
    path = tmp_path / "raw" / "5_Labels_all" / "top_potsdam_2_10_label.tif"
    _write_tif(path, np.moveaxis(_colours(_class_map(0)), -1, 0), _transform("2_11"), UTM)  # shifted grid
    with pytest.raises(DataError, match="georeferenced differently") as err:
        _convert(tmp_path / "raw", tmp_path / "out", **tiles_option)
    assert "top_potsdam_2_10_RGB.tif" in str(err.value) and "top_potsdam_2_10_label.tif" in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_potsdam_corrupt_tif_names_the_file(tmp_path, tiles_option, damage):
    _potsdam_folders(tmp_path / "raw")
    path = tmp_path / "raw" / "2_Ortho_RGB" / "top_potsdam_2_11_RGB.tif"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3] if damage == "truncate" else b"not a tiff" * 40)
    with pytest.raises(DataError, match=r"top_potsdam_2_11_RGB\.tif"):
        _convert(tmp_path / "raw", tmp_path / "out", **tiles_option)


def test_potsdam_buildings_view(tmp_path, tiles_option):
    truth = _potsdam_folders(tmp_path / "raw")
    info, _ = _convert(tmp_path / "raw", tmp_path / "out", **tiles_option, label_view="buildings")
    assert info.class_names == ["background", "building"]
    ids = truth["2_10"][1]
    expected = np.where(ids == 1, 1, 0)
    expected[ids == 255] = 255
    np.testing.assert_array_equal(read_label(tmp_path / "out", "potsdam_2_10"), expected)


def test_potsdam_resampled_view(tmp_path, tiles_option):
    truth = _potsdam_folders(tmp_path / "raw")
    info, _ = _convert(tmp_path / "raw", tmp_path / "out", **tiles_option, resample_gsd_m=0.075)
    assert info.ground_sampling_distance_m == 0.075
    label = read_label(tmp_path / "out", "potsdam_2_10")
    image = read_image(tmp_path / "out", "potsdam_2_10")
    assert label.shape == (64, 64) and image.shape == (64, 64, 3)
    assert set(np.unique(label)) <= set(np.unique(truth["2_10"][1]))  # nearest: no new values
    with rasterio.open(tmp_path / "out" / "images" / "potsdam_2_10.tif") as src:
        assert src.transform.a == pytest.approx(0.075) and src.transform.e == pytest.approx(-0.075)
        assert (src.transform.c, src.transform.f) == pytest.approx((_transform("2_10").c, _transform("2_10").f))
        assert src.crs == CRS.from_epsg(32633)
    # bilinear keeps the image's mean brightness; nearest takes the source pixel under each new centre
    assert image.mean() == pytest.approx(truth["2_10"][0].mean(), abs=3)
    centres = np.floor((np.arange(64) + 0.5) * 1.5).astype(int)
    assert (label == truth["2_10"][1][np.ix_(centres, centres)]).mean() > 0.95


@pytest.mark.parametrize("gsd", [None, 0.075])
def test_potsdam_conversion_is_windowed(tmp_path, tiles_option, monkeypatch, gsd):
    _potsdam_folders(tmp_path / "raw")
    tiles_option = {**tiles_option, "resample_gsd_m": gsd}
    whole, _ = _convert(tmp_path / "raw", tmp_path / "whole", **tiles_option)
    monkeypatch.setattr(canonical, "BLOCK_ROWS", 32)
    heights: list[int] = []

    def spy(sources):
        for source in sources:
            read = source.read

            def recorded(window, read=read, width=source.width):
                heights.append(int(window.height))
                assert window.width == width
                return read(window)

            source.read = recorded
            yield source

    info, sources, _ = prepare_dataset("potsdam", {"path": str(tmp_path / "raw"), **tiles_option}, "potsdam")
    windowed = write_dataset(tmp_path / "blocks", info, spy(sources))
    rows = 96 if gsd is None else 64
    assert max(heights) <= 32 and len(heights) == 3 * rows // 32  # blocks of 32 rows, three tiles
    assert windowed.class_shares == whole.class_shares
    for image_id in whole.images:
        np.testing.assert_array_equal(read_label(tmp_path / "blocks", image_id), read_label(tmp_path / "whole", image_id))
        np.testing.assert_array_equal(read_image(tmp_path / "blocks", image_id), read_image(tmp_path / "whole", image_id))


def test_potsdam_missing_folder_and_bad_options(tmp_path):
    with pytest.raises(DataError, match="ISPRS"):
        prepare_dataset("potsdam", {"path": str(tmp_path / "nowhere")}, "p")
    with pytest.raises(ConfigError, match="label_view"):
        prepare_dataset("potsdam", {"path": str(tmp_path), "label_view": "roofs"}, "p")
    with pytest.raises(ConfigError, match="tiles"):
        prepare_dataset("potsdam", {"path": str(tmp_path), "tiles": ["9_9"]}, "p")
    with pytest.raises(ConfigError, match="unknown option"):
        prepare_dataset("potsdam", {"path": str(tmp_path), "tile": "all"}, "p")


# --------------------------------------------------------------------------------------------- Dubai

DUBAI_RGB = {0: (132, 41, 246), 1: (226, 169, 41), 2: (60, 16, 152), 3: (254, 221, 58), 4: (110, 193, 228)}


def _dubai(root: Path) -> dict[str, np.ndarray]:
    """Tile 1 with an RGB mask and Tile 2 with a palette-mode mask, like the real release."""
    expected = {}
    for tile, shape, palette_mode in ((1, (40, 56), False), (2, (36, 30), True)):
        ids = np.random.default_rng(tile).integers(0, 5, shape)
        ids[:4, :4] = 254  # placeholder for Unlabeled grey
        ids[-3:, -3:] = 253  # placeholder for black
        colours = _colours(ids, {**DUBAI_RGB, 254: (155, 155, 155), 253: (0, 0, 0)})
        folder = root / f"Tile {tile}"
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        image = np.random.default_rng(10 + tile).integers(0, 256, (*shape, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / "images" / "image_part_001.jpg", quality=95)
        mask = Image.fromarray(colours)
        if palette_mode:
            mask = mask.quantize(colors=7, method=Image.Quantize.MAXCOVERAGE)
            assert mask.mode == "P"
            np.testing.assert_array_equal(np.asarray(mask.convert("RGB")), colours)
        mask.save(folder / "masks" / "image_part_001.png")
        ids = np.where(ids >= 253, 255, ids)
        expected[f"tile{tile}_part001"] = ids
    return expected


def test_dubai_classes_and_ignore(tmp_path):
    expected = _dubai(tmp_path / "dubai")
    info, sources, groups = prepare_dataset("dubai", {"path": str(tmp_path / "dubai")}, "dubai")
    assert len(sources) == 2
    written = write_dataset(tmp_path / "out", info, sources)
    assert written.images == ["tile1_part001", "tile2_part001"]
    assert groups == {"train": ["tile1_part001", "tile2_part001"]}
    assert written.class_names == ["land", "water", "building", "vegetation", "road"]
    assert written.ground_sampling_distance_m is None and "CC0" in written.licence
    for image_id, ids in expected.items():
        np.testing.assert_array_equal(read_label(tmp_path / "out", image_id), ids)
        assert read_image(tmp_path / "out", image_id).shape == (*ids.shape, 3)
    assert "Tile 2/masks/image_part_001.png" in written.checksums


def test_dubai_missing_mask_and_folder(tmp_path):
    _dubai(tmp_path / "dubai")
    (tmp_path / "dubai" / "Tile 2" / "masks" / "image_part_001.png").unlink()
    with pytest.raises(DataError, match=r"Tile 2.images.image_part_001\.jpg has no mask"):
        prepare_dataset("dubai", {"path": str(tmp_path / "dubai")}, "dubai")
    with pytest.raises(DataError, match="Tile 1"):
        prepare_dataset("dubai", {"path": str(tmp_path / "empty")}, "dubai")


@pytest.mark.parametrize("target", ["masks/image_part_001.png", "images/image_part_001.jpg"])
def test_dubai_truncated_file_names_it(tmp_path, target):
    """GDAL reads a truncated PNG as zeros without a word: the adapter must notice."""
    _dubai(tmp_path / "dubai")
    path = tmp_path / "dubai" / "Tile 2" / target
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    info, sources, _ = prepare_dataset("dubai", {"path": str(tmp_path / "dubai")}, "dubai")
    with pytest.raises(DataError, match=f"Tile 2.{target.replace('.', '[.]')}"):
        write_dataset(tmp_path / "out", info, sources)
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_dubai_unknown_colour(tmp_path):
    _dubai(tmp_path / "dubai")
    path = tmp_path / "dubai" / "Tile 1" / "masks" / "image_part_001.png"
    mask = np.asarray(Image.open(path)).copy()
    mask[0, 0] = (80, 227, 194)  # classes.json's "Water" colour, not found in the real masks
    Image.fromarray(mask).save(path)
    info, sources, _ = prepare_dataset("dubai", {"path": str(tmp_path / "dubai")}, "dubai")
    with pytest.raises(DataError, match=r"image_part_001\.png.*#50E3C2: 1 pixels"):
        write_dataset(tmp_path / "out", info, sources)


# -------------------------------------------------------------------------------------------- folder


def test_folder_colour_classes(tmp_path):
    images, masks = tmp_path / "imgs", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    table = {0: (10, 20, 30), 1: (200, 0, 0), 255: (0, 0, 0)}
    truth = {}
    for name in ("scene a", "scene_b"):
        ids = np.random.default_rng(len(name)).choice([0, 1, 255], (24, 32))
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(images / f"{name}.png")
        Image.fromarray(_colours(ids, table)).save(masks / f"{name}_gt.png")
        truth[name.replace(" ", "_")] = ids
    (images / "notes.txt").write_text("not an image")
    options = {
        "images": str(images), "masks": str(masks), "mask_suffix": "_gt",
        "classes": [{"name": "ground", "color": [10, 20, 30]}, {"name": "roof", "color": "#C80000"}],
        "ignore_colors": [[0, 0, 0]], "gsd_m": 0.3,
    }
    info, sources, groups = prepare_dataset("folder", options, "mine")
    written = write_dataset(tmp_path / "out", info, sources)
    assert groups == {"train": ["scene_a", "scene_b"]}
    assert written.classes == [{"name": "ground", "color": [10, 20, 30]}, {"name": "roof", "color": [200, 0, 0]}]
    assert written.ground_sampling_distance_m == 0.3
    for image_id, ids in truth.items():
        np.testing.assert_array_equal(read_label(tmp_path / "out", image_id), ids)


def test_folder_integer_classes_keep_georeferencing(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "gt"
    ids = np.random.default_rng(0).choice([0, 255, 7], (48, 40))
    _write_tif(images / "austin1.tif", _image(0, (48, 40)), _transform("2_10"), UTM)
    _write_tif(masks / "austin1.tif", np.where(ids == 7, 9, ids).astype(np.uint8)[None], _transform("2_10"), UTM)
    options = {"images": str(images), "masks": str(masks), "image_glob": "*.tif",
               "classes": [{"name": "background", "value": 0}, {"name": "building", "value": 255}],
               "ignore_values": [9]}
    info, sources, _ = prepare_dataset("folder", options, "inria-like")
    write_dataset(tmp_path / "out", info, sources)
    expected = np.select([ids == 0, ids == 255], [0, 1], 255)
    np.testing.assert_array_equal(read_label(tmp_path / "out", "austin1"), expected)
    with rasterio.open(tmp_path / "out" / "images" / "austin1.tif") as src:
        assert src.crs == CRS.from_epsg(32633) and src.transform.almost_equals(_transform("2_10"))
    # an unexpected value is an error naming the mask
    _write_tif(masks / "austin1.tif", np.full((1, 48, 40), 3, np.uint8), _transform("2_10"), UTM)
    info, sources, _ = prepare_dataset("folder", options, "inria-like")
    with pytest.raises(DataError, match=r"gt.austin1\.tif.*value 3: 1920 pixels"):
        write_dataset(tmp_path / "out2", info, sources)


def test_folder_errors(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "lonely.png")
    base = {"images": str(images), "masks": str(masks), "classes": [{"name": "a", "color": [0, 0, 0]}]}
    with pytest.raises(DataError, match=r"lonely\.png has no mask"):
        prepare_dataset("folder", base, "f")
    with pytest.raises(DataError, match="does not exist"):
        prepare_dataset("folder", {**base, "masks": str(tmp_path / "nope")}, "f")
    with pytest.raises(ConfigError, match="not a mix"):
        prepare_dataset("folder", {**base, "classes": [{"name": "a", "value": 0}, {"name": "b", "color": [1, 1, 1]}]}, "f")
    with pytest.raises(ConfigError, match=r"classes\[0\]\.color"):
        prepare_dataset("folder", {**base, "classes": [{"name": "a", "color": [0, 0, 300]}]}, "f")
    # a colour mask (R, G, B differ) while classes are given by value
    colours = np.zeros((8, 8, 3), np.uint8)
    colours[:3, :, 0] = 200
    Image.fromarray(colours).save(masks / "lonely.png")
    info, sources, _ = prepare_dataset("folder", {**base, "classes": [{"name": "a", "value": 0}]}, "f")
    with pytest.raises(DataError, match=r"lonely\.png.*24 pixels are not grey.*give the classes by color"):
        write_dataset(tmp_path / "out", info, sources)


# ------------------------------------------------------------------------- canonical: RasterSources


def test_write_dataset_raster_source_round_trip_and_source_checksums(tmp_path, monkeypatch):
    monkeypatch.setattr(canonical, "BLOCK_ROWS", 16)
    files = []
    for name in ("a.bin", "sub/b.bin"):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 10)
        files.append(path)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (50, 20, 3), dtype=np.uint8)
    label = rng.choice([0, 1, 255], (50, 20)).astype(np.uint8)
    windows: list[Window] = []

    def read(window):
        windows.append(window)
        rows, cols = window.toslices()
        return image[rows, cols], label[rows, cols]

    info = DatasetInfo("t", [{"name": "x", "color": [0, 0, 0]}, {"name": "y", "color": [1, 1, 1]}], None, "s", "l")
    written = write_dataset(tmp_path / "out", info, [RasterSource("r1", 50, 20, read, None, None, tuple(files))])
    assert [int(w.height) for w in windows] == [16, 16, 16, 2]
    np.testing.assert_array_equal(read_image(tmp_path / "out", "r1"), image)
    np.testing.assert_array_equal(read_label(tmp_path / "out", "r1"), label)
    assert written.checksums == {
        "a.bin": hashlib.sha256(b"a.bin" * 10).hexdigest(),
        "sub/b.bin": hashlib.sha256(b"sub/b.bin" * 10).hexdigest(),
    }
    assert load_info(tmp_path / "out").checksums == written.checksums
    assert not list((tmp_path / "out").rglob("*.tmp*"))  # temporary files renamed or removed
    # a Sample (no source files) next to a RasterSource: its written files are hashed instead
    mixed = write_dataset(tmp_path / "mixed", info, [RasterSource("r1", 50, 20, read, None, None, tuple(files)),
                                                     canonical.Sample("s1", image, label)])
    assert set(mixed.checksums) == {"a.bin", "sub/b.bin", "images/s1.tif", "labels/s1.tif"}


def test_write_dataset_block_errors_leave_no_files(tmp_path):
    def bad_read(window):
        rows = int(window.height)
        return np.zeros((rows, 10, 3), np.uint8), np.full((rows, 10), 7, np.uint8)

    info = DatasetInfo("t", [{"name": "x", "color": [0, 0, 0]}], None, "s", "l")
    with pytest.raises(DataError, match=r"bad_one.*label value 7"):
        write_dataset(tmp_path / "out", info, [RasterSource("bad_one", 12, 10, bad_read)])
    assert not list((tmp_path / "out").rglob("*.tif*")) and not (tmp_path / "out" / "dataset.json").exists()
    with pytest.raises(DataError, match="not a safe file name"):
        write_dataset(tmp_path / "out", info, [RasterSource("../evil", 12, 10, bad_read)])


def test_unknown_adapter_lists_known_ones():
    with pytest.raises(ConfigError) as err:
        prepare_dataset("vaihingen", {}, "v")
    for name in ("potsdam", "dubai", "folder"):
        assert name in str(err.value) and name in ADAPTERS


def test_archives_module_present_or_zip_tests_skip():
    """Documents the dependency: zip extraction needs dial_core.data.archives.safe_extract_zip."""
    if importlib.util.find_spec("dial_core.data.archives") is None:
        pytest.skip("dial_core.data.archives not written yet")
    from dial_core.data.archives import safe_extract_zip

    assert callable(safe_extract_zip)
