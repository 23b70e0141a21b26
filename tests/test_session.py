"""``dial serve``'s annotation session: its maps are ``refine``'s after the same clicks (AC and DISCA),
undo / redo restore exactly, the state survives a restart, and the live scores are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_support import scene
from dial_core.errors import ConfigError, InvalidRequest, StateConflict
from serve_support import (DISCA_WINDOW, OVERLAP, SEED, WINDOW, clicks, disca_config, full_scores, make_session,
                           model)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, one_torch_thread):
    return tmp_path_factory.mktemp("session")


def refined(given, method: str = "ac") -> np.ndarray:
    from dial_core.interactive.refine import refine

    return refine(model(), scene()[0], given, method, disca_config(), WINDOW, OVERLAP, DISCA_WINDOW, seed=SEED)


def test_ac_after_clicks_is_refine(folder) -> None:
    session = make_session(folder, state=None)
    for k, click in enumerate(clicks(), start=1):
        update = session.add_click(click.row, click.col, click.cls)
        assert update.windows >= 1
    np.testing.assert_array_equal(session.predictor.probs, refined(clicks()))
    np.testing.assert_array_equal(session.classes, refined(clicks()).argmax(0))
    assert session.version == len(clicks())


def test_undo_redo_restore_exactly(folder) -> None:
    session = make_session(folder, state=None)
    start = session.predictor.probs.copy(), session.uncertainty.copy(), session.confusion.copy()
    after = []
    for click in clicks():
        session.add_click(click.row, click.col, click.cls)
        after.append(session.predictor.probs.copy())
    for _ in clicks():
        session.undo()
    np.testing.assert_array_equal(session.predictor.probs, start[0])
    np.testing.assert_array_equal(session.uncertainty, start[1])
    np.testing.assert_array_equal(session.confusion, start[2])
    with pytest.raises(StateConflict, match="nothing to undo"):
        session.undo()
    session.redo()
    session.redo()
    np.testing.assert_array_equal(session.predictor.probs, after[1])
    assert session.state()["can_redo"] and session.state()["can_undo"]
    session.add_click(5, 5, 0)  # a new click starts a new branch: nothing left to redo
    with pytest.raises(StateConflict, match="nothing to redo"):
        session.redo()


def test_changed_box_holds_every_changed_pixel(folder) -> None:
    session = make_session(folder, state=None)
    for click in clicks():
        before = session.classes.copy()
        update = session.add_click(click.row, click.col, click.cls)
        diff = before != session.classes
        assert update.changed_pixels == int(diff.sum())
        if update.changed is None:
            assert not diff.any()
            continue
        r0, c0, r1, c1 = update.changed
        rows, cols = np.nonzero(diff)
        assert (r0, c0, r1, c1) == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    assert (session.classes != refined([]).argmax(0)).any()  # the clicks changed the map


def test_disca_is_refine_disca_then_ac_on_adapted_weights(folder) -> None:
    session = make_session(folder, state=None)
    first, rest = clicks()[:3], clicks()[3:]
    for click in first:
        session.add_click(click.row, click.col, click.cls)
    update = session.apply_disca()
    assert update.windows == len(session.predictor.windows)
    np.testing.assert_array_equal(session.predictor.probs, refined(first, "disca"))
    assert session.state()["disca"] == {"applied": True, "clicks": 3}
    for click in rest:  # an AC update on the adapted weights: the adapted network with every click's channels
        session.add_click(click.row, click.col, click.cls)
    from dial_core.interactive.inference import predict_probs

    image = scene()[0]
    channels = session._encode(session.stacks.clicks, (0, 0, *image.shape[:2]))
    np.testing.assert_array_equal(session.predictor.probs,
                                  predict_probs(session.predictor.model, image, channels, WINDOW, OVERLAP)[0])
    session.undo()  # removes an AC click: the adaptation stays
    assert session.state()["disca"]["applied"]
    session.undo()  # removes a click DISCA was adapted on: back to the original weights, everything re-predicted
    assert session.state()["disca"] == {"applied": False, "clicks": 0}
    assert session.predictor.model is session.model
    np.testing.assert_array_equal(session.predictor.probs, refined(first[:2]))


def test_disca_needs_clicks_and_a_learning_rate(folder) -> None:
    with pytest.raises(StateConflict, match="click first"):
        make_session(folder, state=None).apply_disca()
    session = make_session(folder, state=None, disca=False)
    session.add_click(10, 10, 1)
    with pytest.raises(StateConflict, match="--lr"):
        session.apply_disca()


def test_bad_clicks_are_refused_without_a_change(folder) -> None:
    session = make_session(folder, state=None)
    for row, col, cls, match in ((-1, 3, 0, "outside"), (3, 256, 0, "outside"), (3, 3, 3, "unknown class"),
                                 (3.0, 3, 0, "integer"), (3, True, 0, "integer")):
        with pytest.raises(InvalidRequest, match=match):
            session.add_click(row, col, cls)
    assert session.version == 0 and session.state()["clicks"] == []


def test_live_miou_is_a_full_recompute(folder) -> None:
    session = make_session(folder, state=None)
    for click in clicks():
        session.add_click(click.row, click.col, click.cls)
        miou, iou = full_scores(session)
        state = session.state()
        assert state["miou"] == pytest.approx(miou, abs=1e-12)
        np.testing.assert_allclose(np.array(state["iou"], float), iou, atol=1e-12)
    session.apply_disca()
    assert session.state()["miou"] == pytest.approx(full_scores(session)[0], abs=1e-12)
    session.undo()
    assert session.state()["miou"] == pytest.approx(full_scores(session)[0], abs=1e-12)
    assert make_session(folder, state=None, labels=False).state()["miou"] is None


def test_uncertainty_is_the_entropy_of_the_current_softmax(folder) -> None:
    from dial_core.active.acquisition import entropy_pixels

    import torch

    session = make_session(folder, state=None)
    for click in clicks()[:2]:
        session.add_click(click.row, click.col, click.cls)
    np.testing.assert_allclose(session.uncertainty, entropy_pixels(torch.from_numpy(session.predictor.probs)).numpy(),
                               rtol=0, atol=1e-6)
    assert session.uncertainty_scale == pytest.approx(np.log(3))
    suggestions = session.suggestions(3)
    assert [s.rank for s in suggestions] == [1, 2, 3]
    assert suggestions[0].score >= suggestions[1].score >= suggestions[2].score
    r, c, h, w = suggestions[0].window
    assert suggestions[0].score == pytest.approx(float(session.uncertainty[r : r + h, c : c + w].mean()))


def test_state_survives_a_restart(folder) -> None:
    from dial_core.clicks.click_log import read_click_log

    session = make_session(folder, state="restart")
    for click in clicks()[:3]:
        session.add_click(click.row, click.col, click.cls)
    session.apply_disca()
    session.add_click(clicks()[3].row, clicks()[3].col, clicks()[3].cls)
    session.undo()  # leaves one click to redo
    saved = json.loads((folder / "restart" / "session.json").read_text())
    assert saved["clicks"] == [[k.row, k.col, k.cls] for k in clicks()[:3]] and saved["disca_clicks"] == 3
    image = session.image
    assert read_click_log(folder / "restart" / "clicks.geojson", image.shape, 3, image.transform, image.crs) == clicks()[:3]
    again = make_session(folder, state="restart")
    assert again.state() == {**session.state(), "last_seconds": again.last_seconds}
    np.testing.assert_array_equal(again.predictor.probs, session.predictor.probs)
    np.testing.assert_array_equal(again.confusion, session.confusion)
    again.redo()
    np.testing.assert_array_equal(again.predictor.probs, (session.redo(), session.predictor.probs)[1])


def test_a_state_folder_of_another_image_or_network_is_refused(folder) -> None:
    import torch

    session = make_session(folder, state="foreign")
    session.add_click(20, 20, 1)
    other = folder / "other.tif"
    import rasterio

    with rasterio.open(folder / "scene.tif") as src:
        profile, pixels = src.profile, src.read()
    with rasterio.open(other, "w", **profile) as dst:
        dst.write(255 - pixels)
    with pytest.raises(ConfigError, match=r"foreign.*other --state folder"):
        make_session(folder, state="foreign", image_name="other.tif")
    net = model()
    with torch.no_grad():
        next(net.parameters()).add_(1.0)
    with pytest.raises(ConfigError, match="another network"):
        make_session(folder, state="foreign", net=net)
    (folder / "broken").mkdir()
    (folder / "broken" / "session.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a dial serve state"):
        make_session(folder, state="broken")
