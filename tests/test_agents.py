"""The simulated users' registry: every user seeded, carrying the ground-truth class, clicking
inside mistakes where it must; DISIR's user; recorded clicks (click logs) replayed by `human`."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rasterio.transform import from_origin

from dial_core.clicks.agents import AGENTS, AgentContext, agent_for_network, needs_recorded, needs_uncertainty, next_click
from dial_core.clicks.agents.disir import target_class
from dial_core.clicks.agents.largest_mistake import mistake_regions
from dial_core.clicks.click_log import check_click_folder, click_log, read_click_log, write_click_log
from dial_core.clicks.types import Click
from dial_core.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (64, 64)
RECORDED = [Click(3, 4, 1), Click(40, 40, 2), Click(10, 50, 0)]


def _scene():
    """Three classes, four mistakes of different sizes (prediction all 0)."""
    label = np.zeros(SHAPE, np.uint8)
    label[2:22, 2:32] = 1  # 600 px
    label[40:60, 36:56] = 2  # 400 px
    label[30:36, 2:12] = 1  # 60 px
    label[50:54, 4:8] = 2  # 16 px
    label[0:2, 60:64] = 255  # ignored
    return label, np.zeros(SHAPE, np.int64)


BINARY_AGENTS = {"ritm"}  # foreground / background users (RITM's clicker): they click on a binary view


def _binary_scene():
    """:func:`_scene` as foreground (class 1) vs the rest, the ignored pixels kept."""
    label, prediction = _scene()
    return np.where(label == 255, 255, (label == 1).astype(np.uint8)).astype(np.uint8), prediction


def _scene_for(name):
    return _binary_scene() if name in BINARY_AGENTS else _scene()


def _uncertainty(seed=5):
    return np.random.default_rng(seed).random(SHAPE)


def _options(name):
    return {"base": "random_in_mistake", "sigma": 2.0} if name == "noisy" else {}


def _episode(name, seed, steps=6, options=None, fix=True, label=None, prediction=None, n_classes=3):
    """Clicks of ``steps`` steps on :func:`_scene`; ``fix``: each click corrects a 7×7 square around it."""
    if label is None:
        label, prediction = _scene_for(name)
        n_classes = 2 if name in BINARY_AGENTS else n_classes
    prediction = prediction.copy()
    rng, memory, clicks = np.random.default_rng(seed), {}, []
    for step in range(1, steps + 1):
        context = AgentContext(label, prediction, tuple(clicks), rng, _uncertainty(), options=options or _options(name),
                               step=step, budget=steps, n_classes=n_classes, recorded=RECORDED, memory=memory)
        click = next_click(name, context)
        if click is None:
            clicks.append(None)
            continue
        clicks.append(click)
        if fix:
            r, c = click.row, click.col
            prediction[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4] = label[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4]
    return [k for k in clicks if k is not None]


def test_registry_and_schema_agree():
    schema = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())
    evaluation = schema["properties"]["evaluation"]["properties"]
    assert set(evaluation["agent"]["enum"]) == set(AGENTS)
    assert set(evaluation["agent_options"]["properties"]["base"]["enum"]) == set(AGENTS) - {"noisy"}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluation"]
    assert params["agent"] == "largest_mistake_centre"  # the demo's user
    assert set(params["agent_options"]) == set(evaluation["agent_options"]["properties"])


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_same_seed_same_clicks(name):
    first = _episode(name, seed=3)
    assert first, name
    assert _episode(name, seed=3) == first


@pytest.mark.parametrize("name", ["random_in_mistake", "uncertain_in_mistake", "uncertain_anywhere", "random_anywhere", "disir", "noisy",
                                  "largest_mistake_border"])
def test_seed_matters_for_random_users(name):
    runs = {tuple(_episode(name, seed=s, steps=3)) for s in range(6)}
    assert len(runs) > 1


@pytest.mark.parametrize("name", sorted(set(AGENTS) - {"human"}))
def test_click_carries_ground_truth_class(name):
    label, _ = _scene_for(name)
    for click in _episode(name, seed=1):
        assert click.cls == label[click.row, click.col], name


@pytest.mark.parametrize("name", ["largest_mistake_centre", "largest_mistake_border", "disir", "random_in_mistake", "uncertain_in_mistake"])
def test_click_inside_a_mistake(name):
    label, prediction = _scene()
    prediction[5:10, 5:10] = 1  # partly right already
    for seed in range(4):
        rng, clicks = np.random.default_rng(seed), []
        for step in range(1, 5):
            click = next_click(name, AgentContext(label, prediction, tuple(clicks), rng, _uncertainty(), step=step, budget=4, n_classes=3))
            assert prediction[click.row, click.col] != label[click.row, click.col] != 255
            clicks.append(click)


def test_no_mistake_no_click():
    for name in sorted(set(AGENTS) - {"human", "uncertain_anywhere", "random_anywhere"}):
        label, _ = _scene_for(name)
        n_classes = 2 if name in BINARY_AGENTS else 3
        assert next_click(name, AgentContext(label, label.astype(np.int64), uncertainty=_uncertainty(), n_classes=n_classes, options=_options(name))) is None, name


def test_largest_mistake_centre_never_repeats_an_unchanged_region():
    """The prediction never changes: each click goes to the next largest region, never twice to one
    until every region holds a click; then the largest again, at another pixel."""
    label, prediction = _scene()
    regions, _, _ = mistake_regions(label, prediction != label)
    clicks = _episode("largest_mistake_centre", seed=0, steps=6, fix=False)
    hit = [int(regions[k.row, k.col]) for k in clicks]
    sizes = [int((regions == h).sum()) for h in hit]
    assert sizes[:4] == [600, 400, 60, 16]  # four regions, largest first
    assert len(set(hit[:4])) == 4
    assert sizes[4] == 600 and len(set(clicks)) == 6  # all unchanged: the largest again, a new pixel


def test_largest_mistake_centre_skips_a_region_unchanged_since_its_click():
    label, prediction = _scene()
    memory, rng = {}, np.random.default_rng(0)
    first = next_click("largest_mistake_centre", AgentContext(label, prediction, (), rng, memory=memory))
    assert label[first.row, first.col] == 1 and 2 <= first.row < 22  # the 600-px region
    prediction[2:12, 2:32] = 1  # half of it fixed: 300 px left, the 400-px region is now the largest
    second = next_click("largest_mistake_centre", AgentContext(label, prediction, (first,), rng, memory=memory))
    assert label[second.row, second.col] == 2 and second.row >= 40  # the 400-px region now
    prediction[2:12, 2:32] = 0  # the first region back to its full size: unchanged since its click
    third = next_click("largest_mistake_centre", AgentContext(label, prediction, (first, second), rng, memory=memory))
    assert not (2 <= third.row < 22 and 2 <= third.col < 32)  # not the unchanged 600-px region


def test_min_shrink_option():
    label, prediction = _scene()
    memory, rng = {}, np.random.default_rng(0)
    first = next_click("largest_mistake_centre", AgentContext(label, prediction, (), rng, memory=memory))
    prediction[first.row, first.col] = label[first.row, first.col]  # one pixel fixed out of 600
    again = next_click("largest_mistake_centre", AgentContext(label, prediction, (first,), rng, memory=dict(memory)))
    assert 2 <= again.row < 22 and 2 <= again.col < 32  # shrank (by one pixel): may be clicked again
    skip = next_click("largest_mistake_centre", AgentContext(label, prediction, (first,), rng, options={"min_shrink": 0.05}, memory=dict(memory)))
    assert skip.row >= 40  # lost < 5 %: counts as unchanged


def test_largest_mistake_border_clicks_class_borders_of_the_largest_mistake():
    label, prediction = _scene()
    from dial_core.clicks.sampling import border_candidates
    flat, _ = border_candidates(label)
    on_border = np.zeros(label.size, bool)
    on_border[flat] = True
    for seed in range(5):
        click = next_click("largest_mistake_border", AgentContext(label, prediction, rng=np.random.default_rng(seed)))
        assert on_border.reshape(SHAPE)[click.row, click.col]
        assert 2 <= click.row < 22 and 2 <= click.col < 32 and click.cls == 1
    # a mistake inside one class (no class border): its outline
    label2 = np.ones(SHAPE, np.uint8)
    prediction2 = np.ones(SHAPE, np.int64)
    prediction2[20:30, 20:30] = 0
    click = next_click("largest_mistake_border", AgentContext(label2, prediction2))
    assert click.row in (20, 29) or click.col in (20, 29)


def test_border_networks_get_the_border_user():
    assert agent_for_network("largest_mistake_centre", "border") == "largest_mistake_border"
    assert agent_for_network("largest_mistake_centre", "inside") == "largest_mistake_centre"
    assert agent_for_network("largest_mistake_centre", "mistake") == "largest_mistake_centre"
    assert agent_for_network("human", "border") == "human"


def test_disir_picks_among_the_8_largest():
    label = np.zeros((80, 120), np.uint8)
    sizes = {}
    for i in range(12):  # 12 separate squares of growing size
        side = 3 + i
        r, c = 2 + (i // 6) * 40, 2 + (i % 6) * 20
        label[r : r + side, c : c + side] = 1 + i % 2
        sizes[(r, c)] = side * side
    prediction = np.zeros_like(label, dtype=np.int64)
    regions, _, _ = mistake_regions(label, prediction != label)
    ranked = sorted({int(v) for v in np.unique(regions) if v}, key=lambda v: -(regions == v).sum())
    top8 = set(ranked[:8])
    seen = set()
    for seed in range(60):
        click = next_click("disir", AgentContext(label, prediction, rng=np.random.default_rng(seed), n_classes=3))
        rid = int(regions[click.row, click.col])
        assert rid in top8 and click.cls == label[click.row, click.col]
        region = regions == rid
        depth_ok = region[max(click.row - 1, 0) : click.row + 2, max(click.col - 1, 0) : click.col + 2].all()
        assert depth_ok  # the point is inside, away from the outline
        seen.add(rid)
    assert seen == top8


def test_disir_class_dependent_gives_each_class_its_share():
    label = np.zeros((60, 90), np.uint8)
    for k in range(6):  # six classes, a band each, all wrong
        label[:, k * 15 : (k + 1) * 15] = k
    prediction = (label.astype(np.int64) + 1) % 6
    clicks = _episode("disir", seed=0, steps=120, options={"class_dependent": True}, fix=False,
                      label=label, prediction=prediction, n_classes=6)
    classes = [k.cls for k in clicks]
    assert len(classes) == 120
    assert np.bincount(classes, minlength=6).tolist() == [20] * 6  # the DISCA code's float thresholds would not advance
    assert classes == [k // 20 for k in range(120)]  # cycled in blocks
    assert [target_class(s, 10, 3) for s in range(1, 11)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]


def test_disir_class_dependent_without_errors_of_the_class_clicks_nothing():
    label, prediction = _scene()
    context = AgentContext(label, prediction, options={"class_dependent": True}, step=1, budget=3, n_classes=3)
    assert next_click("disir", context) is None  # class 0 is predicted right everywhere
    context.step = 2
    assert next_click("disir", context).cls == 1


@pytest.mark.parametrize("name", ["uncertain_in_mistake", "uncertain_anywhere"])
def test_uncertain_users_pick_from_the_top_decile(name):
    label, prediction = _scene()
    uncertainty = _uncertainty()
    errors = (prediction != label) & (label != 255)
    within = errors if name == "uncertain_in_mistake" else label != 255
    threshold = np.quantile(uncertainty[within], 0.9)
    rng = np.random.default_rng(0)
    for _ in range(20):
        click = next_click(name, AgentContext(label, prediction, rng=rng, uncertainty=uncertainty))
        assert uncertainty[click.row, click.col] >= threshold and within[click.row, click.col]
    assert needs_uncertainty(name) and needs_uncertainty("noisy", {"base": name}) and not needs_uncertainty("disir")


def test_uncertain_anywhere_does_not_need_mistakes():
    label, _ = _scene()
    click = next_click("uncertain_anywhere", AgentContext(label, label.astype(np.int64), uncertainty=_uncertainty()))
    assert click is not None and click.cls == label[click.row, click.col]


def test_noisy_user():
    label, prediction = _scene()
    base = next_click("largest_mistake_centre", AgentContext(label, prediction))
    assert next_click("noisy", AgentContext(label, prediction)) == base  # no noise: the base user
    moved = [next_click("noisy", AgentContext(label, prediction, rng=np.random.default_rng(s), options={"sigma": 4.0})) for s in range(10)]
    assert any((k.row, k.col) != (base.row, base.col) for k in moved)
    assert all(k.cls == label[k.row, k.col] for k in moved)
    wrong = [next_click("noisy", AgentContext(label, prediction, rng=np.random.default_rng(s), n_classes=3,
                                              options={"wrong_class_rate": 1.0})) for s in range(10)]
    assert all(k.cls != label[k.row, k.col] and 0 <= k.cls < 3 for k in wrong)


def test_human_replays_in_order_then_stops():
    label, prediction = _scene()
    memory = {}
    got = [next_click("human", AgentContext(label, prediction, step=s, recorded=RECORDED, memory=memory)) for s in range(1, 6)]
    assert got == RECORDED + [None, None]
    assert needs_recorded("human") and needs_recorded("noisy", {"base": "human"}) and not needs_recorded("disir")
    # the patch protocol: the first recorded click inside the patch not yet placed, in patch coordinates
    patch = AgentContext(label[32:64, 32:64], prediction[32:64, 32:64], recorded=RECORDED, window=(32, 32, 32, 32))
    assert next_click("human", patch) == Click(8, 8, 2)
    patch.clicks = (Click(8, 8, 2),)
    assert next_click("human", patch) is None


def _log(points, crs=None):
    obj = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(xy)}, "properties": {"class": cls}} for xy, cls in points]}
    if crs:
        obj["crs"] = {"type": "name", "properties": {"name": crs}}
    return obj


def test_click_log_round_trip(tmp_path):
    path = tmp_path / "tile_1.geojson"
    write_click_log(path, RECORDED)
    assert read_click_log(path, SHAPE, 3) == RECORDED
    obj = json.loads(path.read_text())
    assert obj["features"][0]["geometry"]["coordinates"] == [4, 3]  # [col, row]
    assert "crs" not in obj


def test_click_log_errors_name_the_file_and_the_click(tmp_path):
    path = tmp_path / "tile_1.geojson"
    path.write_text(json.dumps(_log([((4, 3), 1), ((70.5, 12), 0)])))
    with pytest.raises(DataError, match=r"tile_1\.geojson: click 1 at \(70\.5, 12\) lies outside the image \(64×64 px\)"):
        read_click_log(path, SHAPE, 3)
    path.write_text(json.dumps(_log([((4, 3), 1), ((5, 5), 1), ((6, 6), 7)])))
    with pytest.raises(DataError, match=r"tile_1\.geojson: click 2 at \(6, 6\) has class 7"):
        read_click_log(path, SHAPE, 3)
    path.write_text(json.dumps(_log([((4, 3), "roof")])))
    with pytest.raises(DataError, match=r"click 0 at \(4, 3\) has class 'roof'"):
        read_click_log(path, SHAPE, 3)
    path.write_text("{not json")
    with pytest.raises(DataError, match="tile_1.geojson"):
        read_click_log(path, SHAPE, 3)


def test_click_folder_unknown_and_missing_images(tmp_path):
    write_click_log(tmp_path / "a.geojson", RECORDED)
    write_click_log(tmp_path / "b.geojson", RECORDED)
    assert set(check_click_folder(tmp_path, ["a", "b", "c"], ["a", "b"])) == {"a", "b"}
    write_click_log(tmp_path / "zz.geojson", RECORDED)
    with pytest.raises(DataError, match=r"zz\.geojson: click log for an unknown image 'zz'"):
        check_click_folder(tmp_path, ["a", "b", "c"], ["a"])
    (tmp_path / "zz.geojson").unlink()
    with pytest.raises(DataError, match=r"no click log for image\(s\) c"):
        check_click_folder(tmp_path, ["a", "b", "c"], ["a", "c"])


def test_click_log_in_a_crs_is_mapped_through_the_transform(tmp_path):
    transform = from_origin(500_000.0, 4_650_000.0, 0.5, 0.5)  # 0.5 m pixels, UTM 31N
    path = tmp_path / "geo.geojson"
    # pixel (row 3, col 4) centre, and a point inside pixel (row 10, col 20)
    path.write_text(json.dumps(_log([((500_002.25, 4_649_998.25), 1), ((500_010.1, 4_649_994.9), 2)], crs="EPSG:32631")))
    assert read_click_log(path, SHAPE, 3, transform, "EPSG:32631") == [Click(3, 4, 1), Click(10, 20, 2)]
    with pytest.raises(DataError, match="no georeference"):
        read_click_log(path, SHAPE, 3)  # an image without a grid cannot place map coordinates
    path.write_text(json.dumps(_log([((500_100.0, 4_649_998.25), 1)], crs="EPSG:32631")))
    with pytest.raises(DataError, match=r"click 0 at \(500100, 4\.65e\+06\) → pixel \(col 200, row 3\) lies outside"):
        read_click_log(path, SHAPE, 3, transform, "EPSG:32631")
    # written by the tools in the image's CRS: read back to the same pixels
    write_click_log(path, RECORDED, transform, "EPSG:32631")
    assert json.loads(path.read_text())["crs"]["properties"]["name"] == "EPSG:32631"
    assert read_click_log(path, SHAPE, 3, transform, "EPSG:32631") == RECORDED


def test_click_log_in_another_crs_is_reprojected():
    transform = from_origin(500_000.0, 4_650_000.0, 0.5, 0.5)
    from rasterio.warp import transform as reproject
    lon, lat = reproject("EPSG:32631", "EPSG:4326", [500_002.25], [4_649_998.25])
    obj = _log([((lon[0], lat[0]), 1)], crs="EPSG:4326")
    from dial_core.clicks.click_log import parse_click_log
    assert parse_click_log(obj, "wgs84.geojson", SHAPE, 3, transform, "EPSG:32631") == [Click(3, 4, 1)]
    assert click_log([Click(1, 2, 0)])["features"][0]["properties"] == {"class": 0}


class _FakeSpec:
    encoding = "dt"

    @staticmethod
    def click_encoder():
        return lambda clicks, shape, **_: np.zeros((1, *shape), np.float32)


class _FakeModel:
    """A network whose prediction never changes, whatever the clicks (all class 0)."""

    spec = _FakeSpec()


@pytest.mark.parametrize("agent", ["largest_mistake_centre", "uncertain_in_mistake", "human"])
def test_click_protocol_gives_the_agent_its_context(monkeypatch, agent):
    """Through the protocol: memory across steps (no region re-clicked while unchanged), an
    uncertainty map when the user needs one, the recorded clicks for `human`."""
    from dial_core.evaluation import protocols
    from dial_core.interactive.disca import DiscaConfig

    label, prediction = _scene()
    probs = np.stack([prediction == k for k in range(3)]).astype(np.float32) * 0.8 + 0.1

    class _FixedPredictor:  # the protocol's predictions: always `probs`, whatever the clicks
        def __init__(self, *args, **kwargs):
            self.probs, self.prediction = probs, probs.argmax(0)

        def update(self, *args):
            pass

    monkeypatch.setattr(protocols, "ClickPredictor", _FixedPredictor)
    cfg = protocols.InteractionConfig("ac", agent, DiscaConfig(1e-6, 1, 1.0, 0.0), window=64, overlap=0)
    rows = protocols.click_protocol(_FakeModel(), np.zeros((*SHAPE, 3), np.uint8), label, ["a", "b", "c"], 4, cfg,
                                    np.random.default_rng(0), image_id="tile", recorded=RECORDED[:2])
    clicks = [(r["click_row"], r["click_col"], r["click_class"]) for r in rows[1:]]
    if agent == "human":
        assert clicks == [(3, 4, 1), (40, 40, 2), (-1, -1, -1), (-1, -1, -1)]
        return
    regions, _, _ = mistake_regions(label, prediction != label)
    hit = [int(regions[r, c]) for r, c, _ in clicks]
    assert all(hit) and all(cls == label[r, c] for r, c, cls in clicks)
    if agent == "largest_mistake_centre":
        assert len(set(hit)) == 4


def test_steps_read_the_click_logs_of_the_evaluated_images(tmp_path):
    """steps.recorded_clicks: map coordinates through each image's own transform; errors name the file."""
    from dial_core.data.canonical import DatasetInfo, Sample, write_dataset
    from dial_core.steps import recorded_clicks

    transform = from_origin(500_000.0, 4_650_000.0, 0.5, 0.5)
    info = DatasetInfo("tiny", [{"name": n, "color": [i, i, i]} for i, n in enumerate("abc")], 0.5, "test", "CC0")
    label, _ = _scene()
    samples = [Sample("geo", np.zeros((*SHAPE, 3), np.uint8), label, transform, "EPSG:32631"),
               Sample("plain", np.zeros((*SHAPE, 3), np.uint8), label)]
    root = tmp_path / "tiny"
    info = write_dataset(root, info, samples)
    folder = tmp_path / "clicks" / "tiny"
    write_click_log(folder / "geo.geojson", RECORDED, transform, "EPSG:32631")
    write_click_log(folder / "plain.geojson", RECORDED[:1])
    evaluation = {"agent": "human", "agent_options": {"clicks": str(tmp_path / "clicks" / "{dataset}")}}
    got = recorded_clicks(root, info, ["geo", "plain"], ["geo", "plain"], evaluation)
    assert got == {"geo": RECORDED, "plain": RECORDED[:1]}
    assert recorded_clicks(root, info, ["geo", "plain"], ["geo"], {"agent": "disir"}) == {}
    (folder / "plain.geojson").write_text(json.dumps(_log([((4, 3), 1), ((64, 0), 1)])))
    with pytest.raises(DataError, match=r"plain\.geojson: click 1 at \(64, 0\) lies outside"):
        recorded_clicks(root, info, ["geo", "plain"], ["geo", "plain"], evaluation)
