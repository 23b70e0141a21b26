"""Tests for the simulated user: a click at the deepest point of the largest mistake."""

import numpy as np
import pytest
from scipy import ndimage

from dial_core.clicks.agents import AGENTS, AgentContext, largest_mistake_click, mistake_mask, next_click
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError

SHAPE = (64, 64)


def _blank():
    label = np.zeros(SHAPE, np.uint8)
    prediction = np.zeros(SHAPE, np.int64)
    return label, prediction


def _depth(region: np.ndarray) -> np.ndarray:
    """Distance to the nearest non-region pixel, the image border counting as boundary."""
    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def test_no_mistake_gives_none():
    label, prediction = _blank()
    label[10:20, 10:20] = 2
    prediction[10:20, 10:20] = 2
    assert largest_mistake_click(label, prediction) is None
    assert next_click("largest_mistake_centre", AgentContext(label, prediction)) is None


def test_square_mistake_clicked_at_its_centre():
    label, prediction = _blank()
    label[10:21, 30:41] = 1  # 11 x 11 square predicted as 0
    click = largest_mistake_click(label, prediction)
    assert click == Click(15, 35, 1)


def test_mistake_at_image_border_is_not_clicked_on_the_border():
    label, prediction = _blank()
    label[:, :9] = 3  # a 9-px wide band along the left border
    click = largest_mistake_click(label, prediction)
    assert click.cls == 3
    assert click.col == 4  # border counts as boundary: the middle of the band, not column 0


def test_l_shaped_mistake_clicked_inside_not_at_centroid():
    label, prediction = _blank()
    label[5:45, 5:15] = 1  # vertical arm
    label[35:45, 5:55] = 1  # horizontal arm
    region = label == 1
    centroid = tuple(int(round(v)) for v in ndimage.center_of_mass(region))
    assert not region[centroid]  # the centroid of an L lies outside it
    click = largest_mistake_click(label, prediction)
    assert region[click.row, click.col]
    assert click.cls == 1
    depth = _depth(region)
    assert depth[click.row, click.col] == depth.max()
    assert (click.row, click.col) != centroid


def test_click_class_is_ground_truth_class():
    label, prediction = _blank()
    label[:] = 2
    prediction[:] = 2
    label[20:31, 20:31] = 4
    prediction[20:31, 20:31] = 2  # predicted 2, truth 4
    click = largest_mistake_click(label, prediction)
    assert click == Click(25, 25, 4)
    assert click.cls == label[click.row, click.col]


def test_largest_component_wins_not_the_largest_class_total():
    label, prediction = _blank()
    label[2:12, 2:12] = 1  # class 1: two 10x10 components, 200 px in total
    label[2:12, 40:50] = 1
    label[30:43, 30:43] = 2  # class 2: one 13x13 component, 169 px
    click = largest_mistake_click(label, prediction)
    assert click == Click(36, 36, 2)


def test_ignore_pixels_are_never_mistakes():
    label, prediction = _blank()
    label[:40, :40] = 255  # a huge region "wrongly" predicted, but unlabelled
    label[50:55, 50:55] = 1  # small real mistake
    assert not mistake_mask(label, prediction)[:40, :40].any()
    click = largest_mistake_click(label, prediction)
    assert click == Click(52, 52, 1)
    label[50:55, 50:55] = 0
    assert largest_mistake_click(label, prediction) is None


def test_custom_ignore_index():
    label, prediction = _blank()
    label[:30, :30] = 7
    label[50:53, 50:53] = 1
    assert largest_mistake_click(label, prediction, ignore_index=7) == Click(51, 51, 1)


def test_already_clicked_pixels_are_excluded():
    label, prediction = _blank()
    label[10:21, 30:41] = 1
    first = largest_mistake_click(label, prediction)
    assert first == Click(15, 35, 1)
    second = largest_mistake_click(label, prediction, [first])
    assert second is not None and (second.row, second.col) != (15, 35)
    assert label[second.row, second.col] == 1 and second.cls == 1
    # a one-pixel mistake that was already clicked leaves nothing to click
    label, prediction = _blank()
    label[5, 5] = 2
    assert largest_mistake_click(label, prediction, [Click(5, 5, 2)]) is None
    # clicks outside the image are ignored, not an error
    assert largest_mistake_click(label, prediction, [Click(-1, 70, 0)]) == Click(5, 5, 2)


def test_input_arrays_are_not_modified():
    label, prediction = _blank()
    label[10:21, 30:41] = 1
    before_label, before_pred = label.copy(), prediction.copy()
    largest_mistake_click(label, prediction, [Click(15, 35, 1)])
    np.testing.assert_array_equal(label, before_label)
    np.testing.assert_array_equal(prediction, before_pred)


def test_touching_mistakes_of_two_classes_are_separate():
    label, prediction = _blank()
    label[10:31, 20:41] = 1  # 21 x 21 mistake of class 1, centre (20, 30)
    label[10:31, 6:20] = 2  # 21 x 14 mistake of class 2, touching it on the left
    union = label > 0
    union_pick = np.unravel_index(int(_depth(union).argmax()), SHAPE)
    assert label[union_pick] == 2  # treating both as one mistake would click class 2 pixels
    click = largest_mistake_click(label, prediction)
    assert click == Click(20, 30, 1)


def test_touching_mistakes_bigger_second_class():
    label, prediction = _blank()
    label[10:21, 10:21] = 1  # 121 px
    label[10:31, 21:40] = 2  # 399 px, touching
    click = largest_mistake_click(label, prediction)
    assert click.cls == 2 and label[click.row, click.col] == 2


def test_wrong_prediction_of_other_class_counts():
    label, prediction = _blank()
    prediction[0:9, 0:9] = 3  # GT 0, predicted 3 -> mistake of class 0
    click = largest_mistake_click(label, prediction)
    assert click == Click(4, 4, 0)


def test_next_click_dispatch_and_unknown_agent():
    label, prediction = _blank()
    label[10:21, 30:41] = 1
    assert "largest_mistake_centre" in AGENTS
    context = AgentContext(label, prediction)
    assert next_click("largest_mistake_centre", context) == largest_mistake_click(label, prediction)
    with pytest.raises(ConfigError, match="unknown agent 'random_user'"):
        next_click("random_user", context)
