"""Cityscapes adapter on tiny PNGs generated in the release's layout: the labelId → category table,
ids and split groups, canonical output, the errors a wrong folder gives, and `data_all` through
Snakemake with the shipped overlay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dial_core.config import load_schema
from dial_core.data.adapters import ADAPTERS, SOURCE_OPTIONS, prepare_dataset
from dial_core.data.adapters.cityscapes import CLASSES, LABEL_TO_CLASS
from dial_core.data.canonical import read_image, read_label, write_dataset
from dial_core.errors import ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "config" / "datasets" / "cityscapes.yaml"
# labelId 0..33 -> the paper's class (Cityscapes category), written out independently of the adapter.
EXPECTED = [0] * 7 + [1] * 4 + [2] * 6 + [3] * 4 + [4] * 2 + [5] + [6] * 2 + [7] * 8
CITIES = {"train": ("aachen", "bochum"), "val": ("lindau",)}
HEIGHT, WIDTH = 32, 64  # Cityscapes' 1024 × 2048, shrunk


def write_cityscapes(root: Path, cities: dict[str, tuple[str, ...]] = CITIES, frames: int = 2) -> dict[str, tuple]:
    """leftImg8bit / gtFine PNGs (every labelId 0..33 in each label); returns {id: (rgb, labelIds)}."""
    rng = np.random.default_rng(0)
    truth = {}
    for subset, names in cities.items():
        for city in names:
            for frame in range(frames):
                stem = f"{city}_{frame:06d}_{19 + frame:06d}"
                rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                ids = rng.permutation(np.arange(HEIGHT * WIDTH) % 34).reshape(HEIGHT, WIDTH).astype(np.uint8)
                for kind, array, suffix in (("leftImg8bit", rgb, "leftImg8bit"), ("gtFine", ids, "gtFine_labelIds")):
                    folder = root / kind / subset / city
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(array).save(folder / f"{stem}_{suffix}.png")
                (root / "gtFine" / subset / city / f"{stem}_gtFine_color.png").write_bytes(b"not read")
                truth[stem] = (rgb, ids)
    return truth


def test_every_label_id_maps_to_its_category():
    assert LABEL_TO_CLASS == dict(enumerate(EXPECTED))
    assert CLASSES == [
        {"name": "void", "color": [0, 0, 0]}, {"name": "flat", "color": [128, 64, 128]},
        {"name": "construction", "color": [70, 70, 70]}, {"name": "object", "color": [153, 153, 153]},
        {"name": "nature", "color": [107, 142, 35]}, {"name": "sky", "color": [70, 130, 180]},
        {"name": "human", "color": [220, 20, 60]}, {"name": "vehicle", "color": [0, 0, 142]},
    ]


def test_ids_groups_and_canonical_output(tmp_path):
    truth = write_cityscapes(tmp_path / "raw")
    info, sources, groups = prepare_dataset("cityscapes", {"path": str(tmp_path / "raw")}, "cityscapes")
    assert groups == {
        "train": ["aachen_000000_000019", "aachen_000001_000020", "bochum_000000_000019", "bochum_000001_000020"],
        "val": ["lindau_000000_000019", "lindau_000001_000020"],
    }
    assert len(sources) == 6
    written = write_dataset(tmp_path / "out", info, sources)
    assert written.n_classes == 8 and written.ground_sampling_distance_m is None
    assert "cityscapes-dataset.com/license" in written.licence and "Cityscapes" in written.source
    assert set(written.images) == set(truth)
    lookup = np.array(EXPECTED, np.uint8)
    for image_id, (rgb, ids) in truth.items():
        np.testing.assert_array_equal(read_label(tmp_path / "out", image_id), lookup[ids])
        np.testing.assert_array_equal(read_image(tmp_path / "out", image_id), rgb)
    assert set(written.class_shares) == {c["name"] for c in CLASSES}


def test_subsets_option(tmp_path):
    write_cityscapes(tmp_path, {"train": ("aachen",), "val": ("lindau",), "test": ("berlin",)}, frames=1)
    _, _, groups = prepare_dataset("cityscapes", {"path": str(tmp_path), "subsets": ["val", "test"]}, "c")
    assert groups == {"val": ["lindau_000000_000019"], "test": ["berlin_000000_000019"]}
    with pytest.raises(ConfigError, match=r"dataset\.cityscapes\.subsets"):
        prepare_dataset("cityscapes", {"path": str(tmp_path), "subsets": ["training"]}, "c")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) max_images"):
        prepare_dataset("cityscapes", {"path": str(tmp_path), "max_images": 3}, "c")


def test_missing_label_names_the_image_and_the_expected_file(tmp_path):
    write_cityscapes(tmp_path)
    label = tmp_path / "gtFine/train/bochum/bochum_000001_000020_gtFine_labelIds.png"
    label.unlink()
    with pytest.raises(DataError) as err:
        prepare_dataset("cityscapes", {"path": str(tmp_path)}, "c")
    message = str(err.value)
    assert "bochum_000001_000020_leftImg8bit.png" in message and str(label) in message
    assert "gtFine_trainvaltest.zip" in message


@pytest.mark.parametrize("bad", [34, 255])
def test_label_id_out_of_range_names_file_value_and_pixels(tmp_path, bad):
    write_cityscapes(tmp_path, {"train": ("aachen",)}, frames=1)
    label = tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    ids = np.array(Image.open(label))
    ids[:2, :5] = bad
    Image.fromarray(ids).save(label)
    info, sources, _ = prepare_dataset("cityscapes", {"path": str(tmp_path), "subsets": ["train"]}, "c")
    with pytest.raises(DataError, match=rf"aachen_000000_000019_gtFine_labelIds\.png.*value {bad}: 10 pixels.*0\.\.33"):
        write_dataset(tmp_path / "out", info, sources)


def test_wrong_folders(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset\.cityscapes\.path: folder .*nowhere does not exist"):
        prepare_dataset("cityscapes", {"path": str(tmp_path / "nowhere")}, "c")
    (tmp_path / "gtFine").mkdir()
    with pytest.raises(ConfigError, match=r"dataset\.cityscapes\.path: .* has no leftImg8bit/ folder; extract"):
        prepare_dataset("cityscapes", {"path": str(tmp_path)}, "c")
    write_cityscapes(tmp_path / "cityscapes", frames=1)
    with pytest.raises(ConfigError, match=r"set dataset\.cityscapes\.path to .*cityscapes"):
        prepare_dataset("cityscapes", {"path": str(tmp_path)}, "c")
    with pytest.raises(DataError, match=r"'test' but .*leftImg8bit.test does not exist"):
        prepare_dataset("cityscapes", {"path": str(tmp_path / "cityscapes"), "subsets": ["train", "test"]}, "c")
    empty = tmp_path / "empty"
    (empty / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no <city>/\*_leftImg8bit\.png under"):
        prepare_dataset("cityscapes", {"path": str(empty), "subsets": ["train"]}, "c")


def test_schema_and_overlay_agree_with_the_registry():
    schema = load_schema(ROOT / "workflow" / "schemas" / "params.schema.yaml")
    dataset = schema["properties"]["dataset"]["properties"]
    targets = schema["properties"]["transfer"]["properties"]["targets"]["items"]["properties"]
    assert set(dataset["adapter"]["enum"]) == set(ADAPTERS) == set(SOURCE_OPTIONS)
    assert set(ADAPTERS) <= set(dataset) and set(ADAPTERS) <= set(targets)
    overlay = yaml.safe_load(OVERLAY.read_text())["dataset"]
    assert overlay["adapter"] == "cityscapes" and set(overlay["cityscapes"]) <= set(dataset["cityscapes"]["properties"])


@pytest.mark.e2e  # a Snakemake run of the data phase (20–30 s): ./dial test stays under 10 min on 2 cores
def test_data_all_with_the_shipped_overlay(tmp_path):
    """What a user runs: raw folder in data/raw/cityscapes, the overlay, the data phase of the DAG."""
    from test_workflow import run_snakemake, tiny_params

    truth = write_cityscapes(tmp_path / "data/raw/cityscapes")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    (tmp_path / "own.yaml").write_text(yaml.safe_dump({"tiling": {"size": 32, "overlap": 8}}))
    configs = [str(tmp_path / "params.yaml"), str(OVERLAY), str(tmp_path / "own.yaml")]
    result = run_snakemake(tmp_path, "data_all", "--cores", "1", "--configfile", *configs)
    assert result.returncode == 0, result.stderr[-4000:]
    processed = tmp_path / "data/processed/cityscapes"
    info = json.loads((processed / "dataset.json").read_text())
    assert [c["name"] for c in info["classes"]] == [c["name"] for c in CLASSES] and set(info["images"]) == set(truth)
    split = json.loads((processed / "split.json").read_text())
    assert split["mode"] == "predefined" and split["val"] == ["lindau_000000_000019", "lindau_000001_000020"]
    assert sorted(split["train"] + split["calibration"]) == sorted(i for i in truth if not i.startswith("lindau"))
    lookup = np.array(EXPECTED, np.uint8)
    np.testing.assert_array_equal(read_label(processed, "aachen_000000_000019"), lookup[truth["aachen_000000_000019"][1]])
