"""FESTA's regulariser (Hua et al. 2022) and the ``festa`` arm of DIAL Fig. 5: the three terms on a
feature map small enough to check by hand, the chunked search equal to the plain one, the arm's
loss, its gradient on the decoder and no annotation channels anywhere."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import dial_core.evaluation.protocols as protocols
import dial_core.interactive.festa as festa_module
import dial_core.steps as steps
from conftest import toy_scene
from dial_core.clicks.types import Click
from dial_core.interactive.disca import DiscaConfig, click_cross_entropy, disca_adapt
from dial_core.interactive.festa import FestaConfig, festa_parts, festa_term, sample_anchors
from dial_core.interactive.inference import forward_window
from dial_core.models.segmenter import NetworkSpec, Segmenter, network_input

CLASS_NAMES = ["road", "roof", "tree"]
TILING = {"size": 64, "overlap": 16}

# A 3 × 3 map of 2-d features, (row, col) -> feature:
#   (1, 0)  (1, 0)  (0, 1)
#   (1, 0)  (2, 0)  (0, 1)
#   (0, 2)  (0, 1)  (-1, -1)
GRID = [[(1, 0), (1, 0), (0, 1)], [(1, 0), (2, 0), (0, 1)], [(0, 2), (0, 1), (-1, -1)]]
S = 1 / np.sqrt(2)


def _features() -> torch.Tensor:
    return torch.tensor(GRID, dtype=torch.float32).permute(2, 0, 1).contiguous()  # (C, H, W)


def _expected() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three terms worked out by hand for GRID (the comments give each minimum)."""
    d_feat = [
        0,  # (0,0) (1,0): another (1,0) at 0
        0,  # (0,1) (1,0): idem
        0,  # (0,2) (0,1): another (0,1) at 0
        0,  # (1,0) (1,0)
        1,  # (1,1) (2,0): nearest (1,0), |(1,0)|² = 1
        0,  # (1,2) (0,1)
        1,  # (2,0) (0,2): nearest (0,1), 1
        0,  # (2,1) (0,1)
        5,  # (2,2) (-1,-1): (0,1) → 1 + 4 = 5, (1,0) → 4 + 1 = 5, (0,2) → 1 + 9 = 10, (2,0) → 10
    ]
    d_spat = [
        0,  # (0,0): neighbours (1,0) (1,0) (2,0) → 0
        0,  # (0,1): (1,0) (0,1) (1,0) (2,0) (0,1) → 0
        0,  # (0,2): (1,0) (2,0) (0,1) → 0
        0,  # (1,0): (1,0) (1,0) (2,0) (0,2) (0,1) → 0
        1,  # (1,1) (2,0): all 8; (1,0) → 1, (0,1) → 5, (0,2) → 8, (-1,-1) → 10 → 1
        0,  # (1,2) (0,1): (1,0) (0,1) (2,0) (0,1) (-1,-1) → 0
        1,  # (2,0) (0,2): (1,0) → 5, (2,0) → 8, (0,1) → 1 → 1
        0,  # (2,1) (0,1): (1,0) (2,0) (0,1) (0,2) (-1,-1) → 0
        5,  # (2,2) (-1,-1): (2,0) → 10, (0,1) → 5, (0,1) → 5 → 5
    ]
    # c_far: (-1,-1) is at cos −1/√2 from every (1,0)-like and (0,1)-like feature; itself: the
    # farthest from (-1,-1) is any of the others, also −1/√2
    c_far = [-S] * 9
    return np.array(d_feat, float), np.array(d_spat, float), np.array(c_far, float)


def test_three_terms_by_hand():
    d_feat, d_spat, c_far = festa_parts(_features(), np.arange(9))
    e_feat, e_spat, e_far = _expected()
    assert np.allclose(d_feat.numpy(), e_feat, atol=1e-5)
    assert np.allclose(d_spat.numpy(), e_spat, atol=1e-5)
    assert np.allclose(c_far.numpy(), e_far, atol=1e-5)
    cfg = FestaConfig(anchor_fraction=1.0)  # every pixel an anchor: no draw decides the value
    term = festa_term(_features(), np.random.default_rng(0), cfg)
    assert float(term) == pytest.approx(float(np.mean(0.5 * e_feat + 1.5 * e_spat + 1.0 * e_far)), abs=1e-5)
    # a subset of anchors: their mean only
    term = festa_term(_features(), np.random.default_rng(0), FestaConfig(alpha=1, beta=0, gamma=0), anchors=[4, 8])
    assert float(term) == pytest.approx(3.0, abs=1e-5)


def test_edges_of_the_map():
    one = torch.ones((4, 1, 1))  # one pixel: no other pixel, no neighbour
    d_feat, d_spat, c_far = festa_parts(one, [0])
    assert float(d_feat) == 0 and float(d_spat) == 0 and float(c_far) == pytest.approx(1.0)
    zero = torch.zeros((2, 3, 3))  # zero features: cosine similarity 0, nothing undefined
    assert torch.isfinite(festa_term(zero, np.random.default_rng(0), FestaConfig(anchor_fraction=1.0)))


def test_anchors_are_one_percent_at_least_one_and_seeded():
    assert len(sample_anchors(128, 128, 0.01, np.random.default_rng(0))) == 163
    assert len(sample_anchors(5, 5, 0.01, np.random.default_rng(0))) == 1
    a = sample_anchors(64, 64, 0.05, np.random.default_rng(7))
    assert np.array_equal(a, sample_anchors(64, 64, 0.05, np.random.default_rng(7)))
    assert len(set(a.tolist())) == len(a) and a.max() < 64 * 64


def _plain_term(features: torch.Tensor, anchors: np.ndarray, cfg: FestaConfig) -> torch.Tensor:
    """The whole anchors × pixels matrices at once, with min over them: the reference the chunked,
    gradient-on-the-selected-pairs version must equal (values and gradients)."""
    c, h, w = features.shape
    flat = features.reshape(c, -1).T
    idx = torch.as_tensor(anchors)
    distance = ((flat[idx, None, :] - flat[None, :, :]) ** 2).sum(-1)
    distance = distance + torch.where(torch.arange(h * w)[None, :] == idx[:, None], float("inf"), 0.0)
    d_feat = distance.min(dim=1).values
    cosine = torch.nn.functional.cosine_similarity(flat[idx, None, :], flat[None, :, :], dim=-1, eps=1e-8)
    rows, cols = idx // w, idx % w
    spatial = []
    for r, col in zip(rows.tolist(), cols.tolist()):
        ds = [((features[:, r, col] - features[:, r + dr, col + dc]) ** 2).sum()
              for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr or dc) and 0 <= r + dr < h and 0 <= col + dc < w]
        spatial.append(torch.stack(ds).min())
    return (cfg.alpha * d_feat + cfg.beta * torch.stack(spatial) + cfg.gamma * cosine.min(dim=1).values).mean()


def test_chunked_search_equals_the_plain_minimum_with_its_gradient(monkeypatch):
    monkeypatch.setattr(festa_module, "CHUNK", 3)  # several chunks on a small map
    torch.manual_seed(0)
    base = torch.randn(4, 6, 7)
    anchors = sample_anchors(6, 7, 0.25, np.random.default_rng(1))
    cfg = FestaConfig()
    a, b = base.clone().requires_grad_(), base.clone().requires_grad_()
    ours, plain = festa_term(a, np.random.default_rng(0), cfg, anchors), _plain_term(b, anchors, cfg)
    ours.backward()
    plain.backward()
    assert float(ours.detach()) == pytest.approx(float(plain.detach()), rel=1e-5)
    assert torch.allclose(a.grad, b.grad, atol=1e-5) and a.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# the festa arm
# ------------------------------------------------------------------------------------------------


def _evaluation(**festa) -> dict:
    return {"agent": "largest_mistake_centre", "agent_options": {}, "clicks": {"n_clicks": 2, "methods": ["festa"]},
            "disca": {"lr": 0.02, "steps": 2, "regularisation": 1.0, "p0": "initial",
                      "ac_drop_probability": {"clicks": 0.0, "patches": 0.5}, "window": 32,
                      "calibration": {"grid": [1e-3], "clicks": 2, "agent": None}},
            "arms": {"festa": {"regularisation": 2.5, "festa": {"anchor_fraction": 0.05, "alpha": 0.5, "beta": 1.5, "gamma": 1.0, **festa}}}}


@pytest.fixture(scope="module")
def model(one_torch_thread):
    """An untrained LinkNet-ResNet18 (eval mode): the loss and the gradient do not need a trained one."""
    torch.manual_seed(0)
    return Segmenter(NetworkSpec("linknet", "resnet18", len(CLASS_NAMES), encoding="dt", radius=5.0)).eval()


def test_registry_settings_build_the_festa_config():
    cfg = steps.interaction_config("festa", _evaluation(gamma=2.0), TILING).disca
    assert cfg.festa == FestaConfig(0.05, 0.5, 1.5, 2.0)
    assert cfg.regularisation == 2.5 and cfg.ac_drop_probability == 1.0  # its weight; no channels
    assert steps.interaction_config("disca", _evaluation(), TILING).disca.festa is None  # only the festa arm
    assert steps.interaction_config("wtp", _evaluation(), TILING).disca.festa is None


def test_festa_arm_loss_is_ce_plus_weight_times_term(model):
    x = network_input(toy_scene(np.random.default_rng(1), 64)[0], None, model.spec.n_annotation_channels)
    clicks = [Click(5, 7, 0), Click(40, 33, 2)]
    festa = FestaConfig(0.02)
    cfg = DiscaConfig(0.0, 1, 3.0, 1.0, festa=festa)  # lr 0: the step leaves the model as it was
    loss = disca_adapt(model, x, clicks, None, cfg, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    rng.random()  # the step's drop draw comes first, then the anchors
    with torch.no_grad():
        inputs = x.clone()
        inputs[3:] = 0
        logits, features = forward_window(model, inputs, with_features=True)
        expected = click_cross_entropy(logits, clicks) + 3.0 * festa_term(features, rng, festa)
        ce_only = click_cross_entropy(logits, clicks)
    assert loss == pytest.approx(float(expected), rel=1e-5)
    assert abs(loss - float(ce_only)) > 1e-4  # the term is there


def test_festa_term_trains_the_decoder_not_the_classifier(model):
    net = copy.deepcopy(model)
    x = network_input(toy_scene(np.random.default_rng(2), 64)[0], None, net.spec.n_annotation_channels)
    _, features = forward_window(net, x, with_features=True)
    festa_term(features, np.random.default_rng(0), FestaConfig(0.05)).backward()
    decoder = [p.grad for p in net.net.decoder.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in decoder)
    assert all(p.grad is None for p in net.net.segmentation_head.parameters())  # features: the head's input


def test_festa_arm_sees_no_annotation_channels_and_moves_the_weights(model, monkeypatch):
    image, label = toy_scene(np.random.default_rng(100), 64)
    seen: list[float] = []
    for name in ("forward", "forward_features"):
        original = getattr(Segmenter, name)

        def spy(self, x, *args, _original=original, **kwargs):
            seen.append(float(x[:, 3:].abs().sum()))
            return _original(self, x, *args, **kwargs)

        monkeypatch.setattr(Segmenter, name, spy)
    adapted = {}
    original_adapt = protocols._adapt

    def keep(m, *args, **kwargs):
        out = original_adapt(m, *args, **kwargs)
        adapted.update({k: v.detach().clone() for k, v in m.state_dict().items()})
        return out

    monkeypatch.setattr(protocols, "_adapt", keep)
    cfg = steps.interaction_config("festa", _evaluation(), TILING)
    rows = protocols.click_protocol(model, image, label, CLASS_NAMES, 2, cfg, np.random.default_rng(0))
    assert sum(r["click_row"] >= 0 for r in rows[1:]) == 2
    assert len(seen) > 2 and max(seen) == 0  # neither in the steps nor in the re-predictions
    moved = max(float((adapted[k].double() - v.double()).abs().max()) for k, v in model.state_dict().items())
    assert moved > 0
