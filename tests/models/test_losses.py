"""Loss values on cases with a known answer."""

import math

import pytest
import torch

from fedsim_app.models.losses import (
    VGGPerceptualLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    interior_3d,
    l1_loss,
    mode_seeking_loss,
    soft_iou,
    soft_iou_loss,
    structure_levels,
    structure_mean_loss,
    texture_loss,
    texture_sd,
)
from fedsim_app.models.material import coarse_label_masks, coarse_labels
from fedsim_app.train.quality import structure_means


def test_hinge_losses_analytic():
    real = [torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 1, 1), 0.5)]
    fake = [torch.full((1, 1, 2, 2), -2.0), torch.full((1, 1, 1, 1), 0.0)]
    # scale 0: relu(1-2)+relu(1-2)=0; scale 1: relu(0.5)+relu(1)=1.5 → mean 0.75
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.75)
    # -mean(fake) per scale: 2 and 0 → mean 1
    assert hinge_g_loss(fake).item() == pytest.approx(1.0)


def test_feature_matching_analytic_and_real_is_target():
    real = [[torch.zeros(1, 2, 2, 2, requires_grad=True), torch.ones(1, 1, 1, 1)]]
    fake = [[torch.full((1, 2, 2, 2), 0.5, requires_grad=True), torch.ones(1, 1, 1, 1) * 4]]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx((0.5 + 3.0) / 2)
    loss.backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None


def test_l1():
    assert l1_loss(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0])).item() == 1.0


def test_l1_over_mean_filtered_slices():
    # an 8x8 checkerboard against its mean 0.5: voxel by voxel every pixel is 0.5 off;
    # after the 3x3 mean (the border's windows cut to the slice) the 36 inner windows
    # hold 4 or 5 ones of 9, 1/18 off, and the 28 border windows half ones, exact
    board = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2).float()[None, None]
    flat = torch.full((1, 1, 8, 8), 0.5)
    assert l1_loss(board, flat).item() == 0.5
    assert l1_loss(board, flat, box=3).item() == pytest.approx(36 / 18 / 64)
    assert l1_loss(board, flat, box=1).item() == 0.5  # a 1x1 box filters nothing


def test_mode_seeking_analytic_and_gradient():
    a = torch.zeros(2, 1, 4, 4, requires_grad=True)
    b = torch.full((2, 1, 4, 4), 0.5)
    loss = mode_seeking_loss(a, b)
    assert loss.item() == pytest.approx(-math.log(0.5 + 1e-4))
    loss.backward()  # d/da of -log(mean|a - b|) at a < b: 1 / (n·mean), pushing a away
    assert torch.allclose(a.grad, torch.full_like(a, 1 / (32 * (0.5 + 1e-4))))
    assert mode_seeking_loss(b, b).item() == pytest.approx(-math.log(1e-4))  # bounded


def test_soft_iou_analytic():
    # two voxels: class 1 probability 1 and 0.5; target class 1 on the first only
    probs = torch.tensor([[[0.0, 0.5], [1.0, 0.5]]])  # (B=1, C=2, 2)
    target = torch.tensor([[1, 0]])
    iou = soft_iou(probs, target)
    # class 1: inter 1, union 1.5 + 1 - 1 → 2/3; class 0: inter 0.5, union 0.5 + 1 - 0.5 → 1/2
    assert iou[0, 1].item() == pytest.approx(2 / 3, rel=1e-5)
    assert iou[0, 0].item() == pytest.approx(1 / 2, rel=1e-5)
    assert soft_iou_loss(probs, target).item() == pytest.approx(1 / 3, rel=1e-5)
    perfect = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float()
    assert soft_iou_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_iou_gradcheck():
    probs = torch.rand(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (1, 2, 2))
    assert torch.autograd.gradcheck(lambda p: soft_iou_loss(p, target), (probs,))


def test_structure_levels_weigh_voxels_by_their_share():
    # one volume of two coarse voxels: the first all structure 1, the second a quarter
    # structure 1 and three quarters background; structure 2 absent
    frac = torch.tensor([[[0.0, 0.75], [1.0, 0.25], [0.0, 0.0]]])[..., None, None]
    vol = torch.tensor([[100.0, 20.0]])[..., None, None]  # (B=1, 2, 1, 1)
    means = structure_levels(vol, frac)
    assert means[0, 0].item() == pytest.approx((100 + 0.25 * 20) / 1.25)
    assert means[0, 1].item() == 0.0  # absent
    # the loss skips the absent structure: only structure 1's difference counts
    real = vol.clone()
    real[0, 0] = 110.0  # structure 1's mean moves by 10/1.25 = 8
    assert structure_mean_loss(vol, real, frac).item() == pytest.approx(64.0)
    assert structure_mean_loss(vol, vol, frac).item() == 0.0


def test_structure_mean_loss_gradcheck():
    frac = torch.softmax(torch.randn(2, 3, 2, 2, 2, dtype=torch.float64), 1)
    real = torch.randn(2, 2, 2, 2, dtype=torch.float64)
    model = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m: structure_mean_loss(m, real, frac), (model,))


def test_vgg_needs_local_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg"):
        VGGPerceptualLoss(tmp_path / "none.pt")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="VGG-19"):
        VGGPerceptualLoss(tmp_path / "bad.pt")


def test_structure_levels_over_coarse_label_masks_are_the_quality_figures_means():
    # the training's term and the material figure count the same coarse voxels
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 8, (2, 8, 8, 8), generator=gen)
    labels[1][labels[1] == 5] = 0  # structure 5 absent from the second volume
    vol = torch.randn(2, 4, 4, 4, generator=gen, dtype=torch.float64)
    masks = coarse_label_masks(labels, 4, torch.float64)
    assert masks.shape == (2, 8, 4, 4, 4) and bool((masks.sum(1) == 1).all())
    coarse = coarse_labels(labels, 4)
    levels = structure_levels(vol, masks)
    for b in range(2):
        for c, mean in structure_means(vol[b], coarse[b]).items():
            assert levels[b, c - 1].item() == pytest.approx(mean)
    assert levels[1, 4].item() == 0.0  # absent


def _structure_slices(n=4, size=16):
    onehot = torch.zeros(n, 8, size, size)
    onehot[:, 0] = 1
    onehot[:, 0, 3:13, 3:13] = 0
    onehot[:, 1, 3:13, 3:13] = 1  # one structure, 8x8 interior pixels a slice
    return onehot


def test_texture_loss_is_the_squared_log_ratio_of_the_structures_texture():
    g = torch.Generator().manual_seed(0)
    onehot = _structure_slices()
    real = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64) * 0.05
    assert float(texture_loss(real, real, onehot)) == 0.0
    loss = texture_loss(2 * real, real, onehot)  # the residual is linear: SD doubles
    assert float(loss) == pytest.approx(math.log(2) ** 2, rel=1e-9)
    fake = (3 * real).requires_grad_()
    texture_loss(fake, real, onehot).backward()
    assert fake.grad.abs().sum() > 0
    assert fake.grad[onehot[:, :1] > 0.5].abs().max() == 0  # the background has no say


def test_texture_loss_leaves_out_structures_too_small_to_measure():
    onehot = torch.zeros(2, 8, 16, 16)
    onehot[:, 0] = 1
    onehot[:, 0, 5:7, 5:7] = 0
    onehot[:, 2, 5:7, 5:7] = 1  # 2x2: no interior after a 3x3 erosion
    fake = torch.randn(2, 1, 16, 16, requires_grad=True)
    loss = texture_loss(fake, torch.zeros(2, 1, 16, 16), onehot)
    assert float(loss) == 0.0
    # +0 even where the slices sum below 0 (a progress bar read "tex=-0")
    assert math.copysign(1, float(texture_loss(-fake.abs() - 1, fake, onehot))) == 1
    loss.backward()  # still a graph: a batch without measurable structures trains on


def test_texture_sd_of_white_noise():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, 64, 64, generator=g, dtype=torch.float64)
    mask = torch.zeros_like(x)
    mask[..., 2:-2, 2:-2] = 1
    # x − box₃(x) of white noise has SD sqrt(1 − 1/9) in 2D
    assert float(texture_sd(x, mask)) == pytest.approx((1 - 1 / 9) ** 0.5, rel=0.02)


def test_texture_sd_of_white_noise_in_a_slab():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 1, 16, 48, 48, generator=g, dtype=torch.float64)
    mask = torch.zeros_like(x)
    mask[..., 2:-2, 2:-2, 2:-2] = 1
    # x − box₃(x) of white noise has SD sqrt(1 − 1/27) in 3D
    assert float(texture_sd(x, mask)) == pytest.approx((1 - 1 / 27) ** 0.5, rel=0.02)


def test_slab_texture_loss_sees_noise_that_does_not_hold_across_slices():
    """Real noise constant along z, fake noise as strong in each slice but independent
    slice to slice: the same texture slice by slice, a different one in the volume."""
    g = torch.Generator().manual_seed(4)
    real = torch.randn(1, 1, 1, 256, 256, generator=g, dtype=torch.float64)
    real = real.expand(1, 1, 12, 256, 256)
    fake = torch.randn(1, 1, 12, 256, 256, generator=g, dtype=torch.float64)
    inner = torch.zeros(1, 7, 12, 256, 256, dtype=torch.float64)
    inner[:, 0, 1:-1, 2:-2, 2:-2] = 1
    rows = lambda v: v[0].transpose(0, 1)  # noqa: E731  (K, 1, H, W) slices
    sd2 = {k: float(texture_sd(rows(v), rows(inner[:, :1]))) for k, v in
           (("real", real), ("fake", fake))}
    sd3 = {k: float(texture_sd(v, inner[:, :1])) for k, v in (("real", real), ("fake", fake))}
    assert sd3["real"] == pytest.approx(sd2["real"], rel=1e-9)  # constant in z: the same
    # independent slices: variance 1 − 1/27 in 3-D against 1 − 1/9 slice by slice
    assert sd3["fake"] / sd2["fake"] == pytest.approx(((26 / 27) / (8 / 9)) ** 0.5, rel=3e-3)
    flat = texture_loss(rows(fake), rows(real), None, interior=rows(inner))
    vol = texture_loss(fake, real, None, interior=inner)
    assert float(vol) == pytest.approx(math.log(sd3["fake"] / sd3["real"]) ** 2, rel=1e-6)
    assert float(vol) > 20 * float(flat)


def test_interior_3d_erodes_across_slices_too():
    labels = torch.zeros(2, 10, 12, 12, dtype=torch.long)
    labels[:, 2:8, 3:9, 3:9] = 1  # a 6 x 6 x 6 box: a 4 x 4 x 4 interior
    labels[1, 4, 5, 5] = 2  # one voxel of another structure inside the second box
    m = interior_3d(labels, [0, 2, 3, 5], 8)
    assert m.shape == (8, 7, 12, 12)  # 2 volumes x 4 slices, structures 1..7
    # rows volume-major; slice 2 is the box's face (no interior), 3 and 5 inside it
    assert m[:4, 0].sum((1, 2)).tolist() == [0, 0, 16, 16]
    # the other structure's voxel erodes its 3 x 3 x 3 neighbourhood out of slices 3 and 5
    assert m[4:, 0].sum((1, 2)).tolist() == [0, 0, 16 - 9, 16 - 9]
    assert m[:, 1].sum() == 0  # one voxel has no interior


def test_texture_loss_over_a_given_interior():
    g = torch.Generator().manual_seed(0)
    onehot = _structure_slices()
    real = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64) * 0.05
    fake = real.clone()
    fake[:, :, 6:10, 6:10] *= 3  # more texture in the core only
    core = torch.zeros(4, 7, 16, 16, dtype=torch.float64)
    core[:, 0, 6:10, 6:10] = 1
    rim = onehot[:, 1:].clone()
    rim[:, 0, 6:10, 6:10] = 0
    assert float(texture_loss(fake, real, onehot, interior=rim, min_pixels=4)) < 1e-3
    assert float(texture_loss(fake, real, onehot, interior=core, min_pixels=4)) > 0.5
