"""Strict label conversion (dial_core.data.labels): known codes map, unknown ones fail loudly."""

import numpy as np
import pytest

from dial_core.data.labels import hex_to_rgb, rgb_to_hex, rgb_to_index, values_to_index
from dial_core.errors import ConfigError, DataError

PALETTE = {(255, 255, 255): 0, (0, 0, 255): 1, (255, 255, 0): 2, (0, 0, 0): 255}


def _colour_mask(ids: np.ndarray, palette=PALETTE) -> np.ndarray:
    inverse = {v: k for k, v in palette.items()}
    return np.array([[inverse[i] for i in row] for row in ids], dtype=np.uint8)


def test_rgb_to_index_maps_every_colour():
    ids = np.array([[0, 1, 2, 255], [2, 2, 0, 1]])
    out = rgb_to_index(_colour_mask(ids), PALETTE, "mask.png")
    assert out.dtype == np.uint8 and out.shape == (2, 4)
    np.testing.assert_array_equal(out, ids)


def test_rgb_to_index_large_random_mask_matches_a_loop():
    rng = np.random.default_rng(0)
    ids = rng.choice([0, 1, 2, 255], size=(64, 80))
    np.testing.assert_array_equal(rgb_to_index(_colour_mask(ids), PALETTE, "m"), ids)


def test_ignore_colour_maps_to_255_not_class_0():
    mask = np.zeros((3, 3, 3), np.uint8)  # all black
    assert (rgb_to_index(mask, PALETTE, "m") == 255).all()


def test_unknown_colour_names_file_colour_count_and_hint():
    ids = np.zeros((10, 10), int)
    mask = _colour_mask(ids)
    mask[:3, :4] = (12, 34, 56)  # 12 pixels
    mask[9, 9] = (1, 2, 3)  # 1 pixel
    with pytest.raises(DataError) as err:
        rgb_to_index(mask, PALETTE, "top_potsdam_2_10_label.tif (rows 0..9)")
    text = str(err.value)
    assert "top_potsdam_2_10_label.tif (rows 0..9)" in text
    assert "(12, 34, 56)" in text and "#0C2238" in text and "12 pixels" in text
    assert "(1, 2, 3)" in text and "#010203" in text and "1 pixels" in text
    assert text.index("#0C2238") < text.index("#010203")  # largest first
    assert "add it to the palette or map it to ignore (255)" in text


def test_many_unknown_colours_are_summarised():
    mask = np.zeros((1, 20, 3), np.uint8)
    mask[0, :, 0] = np.arange(1, 21)  # 20 distinct unknown colours, none in the palette
    mask[0, :, 1] = 7
    with pytest.raises(DataError) as err:
        rgb_to_index(mask, PALETTE, "m.png")
    text = str(err.value)
    assert "20 colour(s)" in text and "15 more colours on 15 pixels" in text
    assert text.count("RGB (") == 5


def test_rgb_to_index_rejects_wrong_shapes_and_types():
    with pytest.raises(DataError, match="3 bands"):
        rgb_to_index(np.zeros((4, 4), np.uint8), PALETTE, "m.png")
    with pytest.raises(DataError, match="uint8"):
        rgb_to_index(np.zeros((4, 4, 3), np.uint16), PALETTE, "m.png")
    with pytest.raises(ConfigError):
        rgb_to_index(np.zeros((4, 4, 3), np.uint8), {(0, 0, 0): 300}, "m.png")


def test_values_to_index_binary_mask():
    values = np.array([[0, 255], [255, 0]], np.uint8)
    np.testing.assert_array_equal(values_to_index(values, {0: 0, 255: 1}, "austin1.tif"), [[0, 1], [1, 0]])


def test_values_to_index_ignore_and_wide_types():
    values = np.array([[1, 2, 1000], [7, 7, 1]], np.uint16)
    out = values_to_index(values, {1: 0, 2: 1, 1000: 2, 7: 255}, "m.tif")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 1, 2], [255, 255, 0]])


def test_values_to_index_unknown_value():
    values = np.zeros((5, 5), np.uint8)
    values[0, :3] = 128
    with pytest.raises(DataError) as err:
        values_to_index(values, {0: 0, 255: 1}, "chicago3.tif")
    text = str(err.value)
    assert "chicago3.tif" in text and "value 128: 3 pixels" in text
    assert "add it to the palette or map it to ignore (255)" in text


def test_values_to_index_rejects_float_masks():
    with pytest.raises(DataError, match="integer"):
        values_to_index(np.zeros((2, 2), np.float32), {0: 0}, "m.tif")


def test_hex_round_trip():
    assert hex_to_rgb("#8429F6") == (132, 41, 246)
    assert hex_to_rgb("8429f6") == (132, 41, 246)
    assert hex_to_rgb("#fff") == (255, 255, 255)
    assert rgb_to_hex((132, 41, 246)) == "#8429F6"
    with pytest.raises(ConfigError, match="#RRGGBB"):
        hex_to_rgb("#12345")
