"""RITM's binary clicker (agent ``ritm``) on hand-made masks: which error, which pixel, which sign."""

import numpy as np
import pytest
from scipy import ndimage

from dial_core.clicks.agents import AGENTS, AgentContext, next_click
from dial_core.clicks.types import Click
from dial_core.errors import ConfigError

SHAPE = (30, 30)


def _click(label, prediction, clicks=(), **kw):
    return next_click("ritm", AgentContext(label, prediction, tuple(clicks), **kw))


def _square_fn_small_fp():
    """A 7×7 building missed (FN, deepest point (13, 7) unique at depth 4) and a 2×2 false positive."""
    label = np.zeros(SHAPE, np.uint8)
    label[10:17, 4:11] = 1
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[20:22, 20:22] = 1
    return label, prediction


def test_registered():
    assert AGENTS["ritm"].__name__ == "ritm"


def test_larger_false_negative_gives_a_positive_click_at_its_centre():
    label, prediction = _square_fn_small_fp()
    assert _click(label, prediction) == Click(13, 7, 1)


def test_larger_false_positive_gives_a_negative_click():
    label = np.zeros(SHAPE, np.uint8)
    label[2:4, 2:4] = 1  # 2×2 FN, depth 1
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[15:24, 15:24] = 1  # 9×9 FP, depth 5 at (19, 19) only
    assert _click(label, prediction) == Click(19, 19, 0)
    assert _click(label, prediction.astype(bool)) == Click(19, 19, 0)  # a boolean prediction too


def test_equal_depths_give_a_negative_click():
    label = np.zeros(SHAPE, np.uint8)
    label[2:5, 2:5] = 1  # 3×3 FN
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[20:23, 20:23] = 1  # 3×3 FP, same depth 2
    assert _click(label, prediction) == Click(21, 21, 0)  # strict >: the tie goes negative


def test_image_border_counts_as_boundary():
    label = np.zeros((20, 20), np.uint8)
    label[0:7, 5:12] = 1  # 7×7 FN touching the top edge
    prediction = np.zeros((20, 20), np.uint8)
    unpadded = ndimage.distance_transform_edt(label == 1)
    assert np.unravel_index(unpadded.argmax(), unpadded.shape) == (0, 8)  # without the padding: on the edge
    assert _click(label, prediction) == Click(3, 8, 1)


def test_clicked_pixel_is_excluded():
    label, prediction = _square_fn_small_fp()
    # depth 4 at the centre is gone; depth 3 is the ring rows 12-14, cols 6-8: first in row-major order
    assert _click(label, prediction, [Click(13, 7, 1)]) == Click(12, 6, 1)
    # clicks elsewhere change nothing
    assert _click(label, prediction, [Click(0, 0, 0), Click(99, 99, 0)]) == Click(13, 7, 1)


def test_clicking_the_fn_centre_can_flip_the_sign():
    label = np.zeros(SHAPE, np.uint8)
    label[2:5, 2:5] = 1  # 3×3 FN: depth 2 at (3, 3), 1 elsewhere
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[20:22, 20:23] = 1  # 2×3 FP: depth 1
    assert _click(label, prediction) == Click(3, 3, 1)
    assert _click(label, prediction, [Click(3, 3, 1)]) == Click(20, 20, 0)  # 1 vs 1: negative, first FP pixel


def test_ignored_pixels_are_no_error():
    label = np.zeros(SHAPE, np.uint8)
    label[0:12, 0:12] = 255
    label[20:23, 20:23] = 1
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[0:12, 0:12] = 1  # predicted building where the label is ignored
    assert _click(label, prediction) == Click(21, 21, 1)
    label[20:23, 20:23] = 0
    assert _click(label, prediction) is None


def test_no_error_no_click():
    label, _ = _square_fn_small_fp()
    assert _click(label, label.copy()) is None
    single = np.zeros(SHAPE, np.uint8)
    single[5, 5] = 1
    assert _click(single, np.zeros(SHAPE, np.uint8), [Click(5, 5, 1)]) is None  # every error pixel clicked


def test_multi_class_label_is_refused():
    label, prediction = _square_fn_small_fp()
    label[0, 0] = 2
    with pytest.raises(ConfigError, match=r"ritm.*binary.*label_view: buildings"):
        _click(label, prediction)
    label[0, 0] = 0
    with pytest.raises(ConfigError, match="binary"):
        _click(label, prediction, n_classes=6)
    assert _click(label, prediction, n_classes=2) == Click(13, 7, 1)
