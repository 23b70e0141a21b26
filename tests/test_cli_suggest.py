"""`dial suggest`: DIAL's next patches, most uncertain first, as polygons with rank and score."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from cli_support import GSD, SIZE, TRANSFORM, save_model, scene, trained_state, write_scene
from dial_core.app.cli import main
from dial_core.app.guidance import suggest_patches


@pytest.fixture(scope="module")
def files(tmp_path_factory, one_torch_thread):
    folder = tmp_path_factory.mktemp("suggest")
    return {"model": save_model(folder / "model.pt"), "image": write_scene(folder / "scene.tif"),
            "plain": write_scene(folder / "plain.tif", georeferenced=False)}


def test_patches_ranked_by_mean_uncertainty() -> None:
    uncertainty = np.zeros((100, 100), np.float32)
    uncertainty[50:, 50:] = 1.0  # the bottom-right patch
    uncertainty[:50, 50:] = 0.5
    uncertainty[0, 0] = 2.0  # one hot pixel: a mean of 2e-4 over its patch
    found = suggest_patches(uncertainty, (100, 100), 50, 3)
    assert [s.window for s in found] == [(50, 50, 50, 50), (0, 50, 50, 50), (0, 0, 50, 50)]
    assert [s.rank for s in found] == [1, 2, 3]
    assert [s.score for s in found] == pytest.approx([1.0, 0.5, 2.0 / 2500])
    assert [s.window for s in suggest_patches(uncertainty, (100, 100), 50, 9, exclude=frozenset({3}))][:1] == [(0, 50, 50, 50)]


def test_random_order_is_seeded_and_scoreless() -> None:
    a = suggest_patches(None, (100, 100), 25, 16, np.random.default_rng(1))
    b = suggest_patches(None, (100, 100), 25, 16, np.random.default_rng(1))
    assert a == b and all(s.score is None for s in a) and len({s.window for s in a}) == 16


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_suggest_writes_ranked_polygons_in_the_images_crs(files, tmp_path, suffix: str, capsys) -> None:
    from dial_core.active.acquisition import patch_scores, uncertainty_order
    from dial_core.active.uncertainty import predict_with_uncertainty
    from dial_core.data.tiling import tile_windows
    from dial_core.models.segmenter import segmenter_from_state

    out = tmp_path / f"next{suffix}"
    assert main(["suggest", str(files["image"]), "--model", str(files["model"]), "--acquisition", "entropy",
                 "--patches", "5", "--size", "64", "--out", str(out), "--quiet"]) == 0
    frame = gpd.read_file(out)
    assert frame.crs.to_epsg() == 32631 and list(frame["rank"]) == [1, 2, 3, 4, 5]
    assert list(frame["score"]) == sorted(frame["score"], reverse=True)
    _, entropy = predict_with_uncertainty(segmenter_from_state(trained_state()), scene()[0], None, "entropy")
    windows = tile_windows(SIZE, SIZE, 64, 0)
    scores = patch_scores(entropy, windows)
    best = uncertainty_order(scores)[:5]
    assert list(frame["score"]) == pytest.approx([scores[i] for i in best], rel=1e-5)
    for (_, row), index in zip(frame.iterrows(), best):
        r, c, h, w = windows[index]
        assert (row["row_off"], row["col_off"], row["height"], row["width"]) == (r, c, h, w)
        x0, y0 = TRANSFORM * (c, r)
        assert row.geometry.equals(box(x0, y0 - h * GSD, x0 + w * GSD, y0))
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 5 and listing[0].split()[0] == "1"


def test_suggest_in_pixels_and_with_mc_dropout(files, tmp_path) -> None:
    out = tmp_path / "next.gpkg"  # GeoJSON readers take a file without crs for longitudes / latitudes
    assert main(["suggest", str(files["plain"]), "--model", str(files["model"]), "--acquisition", "mc_dropout",
                 "--patches", "3", "--size", "128", "--out", str(out), "--quiet"]) == 0
    frame = gpd.read_file(out)
    assert frame.crs is None and len(frame) == 3
    assert all(row.geometry.equals(box(row["col_off"], row["row_off"], row["col_off"] + 128, row["row_off"] + 128))
               for _, row in frame.iterrows())


def test_suggest_errors(files, tmp_path, capsys) -> None:
    assert main(["suggest", str(files["image"]), "--model", str(files["model"]), "--acquisition", "confidnet",
                 "--out", str(tmp_path / "n.geojson"), "--quiet"]) == 1
    assert "--confidnet" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["suggest", str(files["image"]), "--model", str(files["model"]), "--acquisition", "curiosity",
              "--out", str(tmp_path / "n.geojson")])
    assert exit_.value.code == 2 and "--acquisition" in capsys.readouterr().err
