"""RITM-style network (Conv1S click fusion, auxiliary head), its click disks and its loss."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from dial_core.models.ritm import RITMNet, click_maps
from dial_core.models.segmenter import ARCHITECTURES, channels_last
from dial_core.training.ritm_loss import normalized_focal_loss, ritm_loss, sigmoid_bce

torch.set_num_threads(1)

SIZE = 64


def _logits(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, -1)


def _target(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8).reshape(1, 1, 1, -1)


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------
def test_nfl_matches_hand_computation():
    # p = sigmoid(logit) = 0.5, 0.75, 0.25 (logits 0, ln 3, -ln 3); the fourth pixel is ignored.
    logits = _logits([0.0, math.log(3.0), -math.log(3.0), 7.0])
    target = _target([1, 0, 1, 255])
    # pt = 0.5 (positive, p=0.5), 0.25 (negative, 1-0.75), 0.25 (positive, p=0.25)
    # beta = (1-pt)^2 = 0.25, 0.5625, 0.5625; sum beta = 1.375; n_valid = 3; mult_i = beta_i * 3 / 1.375
    # alpha = 0.25: alpha_t = 0.25 (positive), 0.75 (negative)
    # loss = sum_i alpha_t * beta_i * 3/1.375 * (-ln pt_i) / 3
    expected = (0.25 * 0.25 * math.log(2.0) + 0.75 * 0.5625 * math.log(4.0) + 0.25 * 0.5625 * math.log(4.0)) / 1.375
    got = normalized_focal_loss(logits, target, alpha=0.25, gamma=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_nfl_batch_is_mean_of_per_sample_losses_each_over_its_valid_pixels():
    # Sample 2 = sample 1 with two more ignored pixels: same per-sample loss, so the batch mean is it too.
    a = normalized_focal_loss(_logits([0.0, math.log(3.0), -math.log(3.0)]), _target([1, 0, 1]))
    logits = torch.tensor([[0.0, math.log(3.0), -math.log(3.0), 0.0, 0.0], [0.0, math.log(3.0), -math.log(3.0), 5.0, -5.0]])
    target = torch.tensor([[1, 0, 1, 255, 255], [1, 0, 1, 255, 255]], dtype=torch.uint8)
    b = normalized_focal_loss(logits.reshape(2, 1, 1, 5), target.reshape(2, 1, 1, 5))
    assert b.item() == pytest.approx(a.item(), rel=1e-6)


def test_nfl_gamma_zero_is_alpha_weighted_bce():
    logits = _logits([0.3, -1.2, 2.0, -0.4])
    target = _target([1, 0, 0, 1])
    bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none").flatten()
    weights = torch.tensor([0.3, 0.7, 0.7, 0.3])  # alpha = 0.3 for positives, 0.7 for negatives
    expected = (weights * bce).mean()
    got = normalized_focal_loss(logits, target, alpha=0.3, gamma=0.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_nfl_ignored_pixels_do_not_count_and_gradient_is_finite():
    logits = _logits([0.3, -1.2, 2.0, -40.0, 40.0]).requires_grad_()
    kept = normalized_focal_loss(logits[..., :3], _target([1, 0, 0]))
    full = normalized_focal_loss(logits, _target([1, 0, 0, 255, 255]))
    assert full.item() == pytest.approx(kept.item(), rel=1e-6)
    full.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[..., 3:].abs().sum() == 0
    # saturated, confidently wrong pixels: still finite
    wrong = _logits([40.0, -40.0]).requires_grad_()
    loss = normalized_focal_loss(wrong, _target([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(wrong.grad).all()


def test_ritm_loss_is_nfl_plus_point_four_bce():
    gen = torch.Generator().manual_seed(0)
    logits, aux = torch.randn(2, 1, 8, 8, generator=gen), torch.randn(2, 1, 8, 8, generator=gen)
    target = (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).to(torch.uint8)
    target[:, :, 0] = 255
    valid = target != 255
    bce = F.binary_cross_entropy_with_logits(aux[valid], target[valid].float())  # both samples have 56 valid pixels
    expected = normalized_focal_loss(logits, target) + 0.4 * bce
    assert ritm_loss(logits, aux, target).item() == pytest.approx(expected.item(), rel=1e-5)
    assert sigmoid_bce(aux, target).item() == pytest.approx(bce.item(), rel=1e-5)


# --------------------------------------------------------------------------------------------
# Click disks
# --------------------------------------------------------------------------------------------
def test_click_maps_disks_and_signs():
    maps = click_maps([(10, 10, True), (40, 50, False)], (64, 64), radius=5)
    assert maps.shape == (2, 64, 64) and maps.dtype == np.float32
    pos, neg = maps
    assert pos[10, 15] == 1 and pos[13, 14] == 1  # distance 5 and 5 (3-4-5): on the disk
    assert pos[10, 16] == 0 and pos[14, 14] == 0  # distance 6 and 5.66: outside
    assert neg[40, 50] == 1 and pos[40, 50] == 0 and neg[10, 10] == 0
    assert pos.sum() == neg.sum() == 81  # lattice points with x^2 + y^2 <= 25
    edge = click_maps([(0, 0, True)], (8, 8), radius=2)
    assert edge[0].sum() == 6 and edge[1].sum() == 0  # quarter disk clipped at the border


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def net() -> RITMNet:
    torch.manual_seed(0)
    return RITMNet("resnet18", "unet").eval()


def _inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, SIZE, SIZE, generator=gen), torch.zeros(1, 3, SIZE, SIZE)


def test_conv1s_matches_first_conv_block(net):
    assert net.fusion_module == "relu" and (net.fusion_channels, net.fusion_stride) == (64, 2)
    image, maps = _inputs()
    seen = []
    handle = net.net.encoder.relu.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        net.net.encoder(image)
        encoded = net.maps_transform(maps)
    handle.remove()
    assert encoded.shape == seen[0] == (1, 64, SIZE // 2, SIZE // 2)
    assert all(conv.bias is None for conv in net.maps_transform if isinstance(conv, torch.nn.Conv2d))


def test_zero_maps_leave_the_image_path_exactly_unchanged(net):
    image, zeros = _inputs()
    plain = ARCHITECTURES["unet"](encoder_name="resnet18", encoder_weights=None, in_channels=3, classes=1)
    plain.load_state_dict(net.net.state_dict())  # the same weights, no Conv1S hook
    plain.eval().to(memory_format=torch.channels_last)  # same layout as RITMNet: same conv kernels, same bits
    with torch.no_grad():
        logits, aux = net(image, zeros)
        bypass, _ = net(image, None)
        reference = plain(channels_last(image))
    assert logits.shape == aux.shape == (1, 1, SIZE, SIZE)
    assert torch.equal(logits, reference) and torch.equal(logits, bypass)


def test_clicks_change_the_logits(net):
    image, maps = _inputs()
    maps[0, :2] = torch.from_numpy(click_maps([(20, 20, True), (44, 40, False)], (SIZE, SIZE)))
    with torch.no_grad():
        clicked, _ = net(image, maps)
        empty, _ = net(image, torch.zeros_like(maps))
    assert not torch.equal(clicked, empty)


def test_training_step_reaches_maps_transform():
    torch.manual_seed(0)
    model = RITMNet("resnet18", "linknet").train()
    image, maps = _inputs()
    maps[0, 0] = torch.from_numpy(click_maps([(30, 30, True)], (SIZE, SIZE)))[0]
    target = torch.zeros(1, 1, SIZE, SIZE, dtype=torch.uint8)
    target[..., 20:40, 20:40] = 1
    logits, aux = model(torch.cat([image, image]), torch.cat([maps, maps]))
    ritm_loss(logits, aux, torch.cat([target, target])).backward()
    grads = [p.grad for p in model.maps_transform.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_mismatched_maps_are_refused(net):
    image, _ = _inputs()
    with pytest.raises(ValueError, match="Conv1S"):
        net(image, torch.zeros(1, 3, SIZE // 2, SIZE // 2))


def test_hrnet18_backbone_shapes():
    # RITM's HRNet-18 (small) through smp's timm-universal encoder; builds offline with no weights.
    torch.manual_seed(0)
    model = RITMNet("tu-hrnet_w18_small", "unet").eval()
    assert model.fusion_module == "model.act1" and (model.fusion_channels, model.fusion_stride) == (64, 2)
    image, maps = _inputs()
    maps[0, :2] = torch.from_numpy(click_maps([(20, 20, True), (44, 40, False)], (SIZE, SIZE)))
    with torch.no_grad():
        logits, aux = model(image, maps)
        bypass, _ = model(image, torch.zeros_like(maps))
        plain, _ = model(image, None)
    assert logits.shape == aux.shape == (1, 1, SIZE, SIZE)
    assert torch.equal(bypass, plain) and not torch.equal(logits, plain)
