"""Structure levels from the coarse CT (``levels="coarse"``): the per-volume levels
(analytic answers), the fitted shift, the enhancer's and its plan's output, the enhance
stage, and their gradients."""

import pytest
import torch
import torch.nn.functional as F

from fedsim_app.models.enhance import enhance, level_inputs, structure_levels_of
from fedsim_app.models.enhance_infer import plan_enhancer
from fedsim_app.models.enhancer import (
    SiteEnhancer,
    centre_in_structures,
    fit_level_shift,
    level_skip,
)


def _net(levels="coarse", seed=0):
    torch.manual_seed(seed)
    net = SiteEnhancer(width=8, n_down=1, spade_hidden=8, levels=levels)
    with torch.no_grad():  # a trained-looking net
        for p in net.parameters():
            p.normal_(std=0.1)
        net.skip_scale.uniform_(0.0, 1.5)
        net.skip_shift.normal_(std=0.3)
        if levels == "coarse":
            net.level_shift.normal_(std=0.1)
    return net


def test_levels_are_the_coarse_mean_over_the_voxels_a_structure_labels():
    # labels 4³ over a 2³ coarse grid: each coarse voxel is a 2³ block of 8 label voxels,
    # labelled as nearest sampling picks: the block's corner of even coordinates
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, :2, :2, :2] = 1  # fills block (0,0,0)
    labels[0, 2, 2, 2:4] = 1  # 2/8 of block (1,1,1), its corner (2,2,2) among them
    for z, y, x in ((0, 3, 1), (1, 3, 1), (1, 2, 1), (3, 0, 3)):
        labels[0, z, y, x] = 2  # 3/8 of block (0,1,0), 1/8 of (1,0,1): no corner
    coarse = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2) * 100 - 300  # HU
    got = structure_levels_of(coarse, labels)
    assert got.shape == (1, 8) and float(got[0, 0]) == 0.0
    want1 = (coarse[0, 0, 0, 0] + coarse[0, 1, 1, 1]) / 2 / 1000
    assert abs(float(got[0, 1]) - float(want1)) < 1e-6
    # no voxel labelled 2: each weighed by the share of it structure 2 fills
    want2 = (3 / 8 * coarse[0, 0, 1, 0] + 1 / 8 * coarse[0, 1, 0, 1]) / (4 / 8) / 1000
    assert abs(float(got[0, 2]) - float(want2)) < 1e-6
    assert got[0, 3:].tolist() == [0.0] * 5  # absent structures
    # probabilities give their most likely labels' levels; nothing keeps a graph
    probs = (F.one_hot(labels, 8).movedim(-1, 1).float() * 0.6 + 0.05).requires_grad_(True)
    soft = structure_levels_of(coarse.requires_grad_(True), probs)
    torch.testing.assert_close(soft, got)
    assert not soft.requires_grad


def test_level_shift_is_the_mean_gap_every_volume_weighing_the_same():
    labels = torch.zeros(2, 1, 10, 10, dtype=torch.long)
    labels[0, 0, 0, 0] = 1  # one voxel in volume 0, 99 in volume 1
    labels[1, 0].fill_(1)
    labels[1, 0, 0, 0] = 0
    real = torch.zeros(2, 1, 10, 10)
    real[0, 0, 0, 0] = 0.30
    real[1][labels[1] == 1] = 0.10
    levels = torch.zeros(2, 8)
    levels[:, 1] = torch.tensor([0.20, 0.20])
    got = fit_level_shift(levels, real, labels, 8)
    # gaps 0.10 and -0.10, one per volume: 0 (a voxel-weighted mean would say -0.098)
    assert abs(float(got[1])) < 1e-6
    assert got[2:].tolist() == [0.0] * 6  # labels no volume has
    levels[:, 1] = 0.0
    assert abs(float(fit_level_shift(levels, real, labels, 8)[1]) - 0.20) < 1e-6


def test_each_structure_sits_at_its_level_plus_shift_and_the_background_at_the_skip():
    net = _net()
    g = torch.Generator().manual_seed(1)
    coarse = torch.randn(4, 1, 16, 16, generator=g) * 0.3
    labels = torch.randint(0, 8, (4, 16, 16), generator=g)
    levels = torch.randn(4, 8, generator=g) * 0.2
    k, noise = torch.rand(4, generator=g), torch.randn(4, 1, 16, 16, generator=g)
    with torch.no_grad():
        out = net(coarse, labels, k, noise=noise, levels=levels)
        other = net(coarse, labels, k, noise=noise, levels=levels * 0)
    for i in range(4):
        for c in range(1, 8):
            m = labels[i] == c
            if m.any():
                want = float(levels[i, c] + net.level_shift[c])
                assert abs(float(out[i, 0][m].mean()) - want) < 1e-5
    # the background (label 0) ignores the levels: the skip plus the residual
    bg = labels == 0
    onehot = F.one_hot(labels, 8).permute(0, 3, 1, 2).float()
    base = level_skip(coarse, onehot, net.skip_scale, net.skip_shift, levels, net.level_shift)
    assert float((out - base)[:, 0][bg].abs().max()) > 0.01  # the network adds texture there
    torch.testing.assert_close(out[:, 0][bg], other[:, 0][bg])
    # and the heart moves with them, by exactly the change of level
    heart = ~bg
    torch.testing.assert_close((out - other)[:, 0][heart],
                               levels.gather(1, labels.reshape(4, -1)).reshape(4, 16, 16)[heart])


def test_levels_are_asked_for_exactly_when_the_enhancer_uses_them():
    coarse, labels, k = torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long), \
        torch.rand(2)
    with pytest.raises(ValueError, match=r'levels="coarse" needs levels \(2, 8\)'):
        _net()(coarse, labels, k)
    with pytest.raises(ValueError, match=r"got \(1, 8\)"):
        _net()(coarse, labels, k, levels=torch.zeros(1, 8))
    with pytest.raises(ValueError, match="do not pass levels"):
        _net("skip")(coarse, labels, k, levels=torch.zeros(2, 8))
    with pytest.raises(ValueError, match="levels must be one of skip, coarse"):
        SiteEnhancer(width=8, n_down=1, spade_hidden=8, levels="fine")
    # a "skip" enhancer's state dict is what it was before levels existed
    assert "level_shift" not in _net("skip").state_dict()
    assert "level_shift" in _net().state_dict()
    assert level_inputs(_net("skip"), torch.zeros(1, 2, 2, 2),
                        torch.zeros(1, 4, 4, 4, dtype=torch.long), 3) == {}


def test_plan_computes_the_forward_with_levels():
    net = _net()
    g = torch.Generator().manual_seed(2)
    coarse = torch.randn(3, 1, 16, 16, generator=g) * 0.3
    labels = torch.randint(0, 8, (3, 16, 16), generator=g)
    k, noise = torch.rand(3, generator=g), torch.randn(3, 1, 16, 16, generator=g)
    levels = torch.randn(3, 8, generator=g) * 0.2
    with torch.no_grad():
        want = net(coarse, labels, k, noise=noise, levels=levels)
    plan = plan_enhancer(net)
    got = plan(coarse, labels, k, noise=noise, levels=levels)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))
    with pytest.raises(ValueError, match="needs levels"):
        plan(coarse, labels, k, noise=noise)


def test_enhance_gives_each_structure_its_volumes_level_in_every_slice():
    net = _net()
    g = torch.Generator().manual_seed(3)
    coarse = torch.randn(2, 4, 4, 4, generator=g) * 300
    labels = torch.randint(0, 8, (2, 8, 8, 8), generator=g)
    levels = structure_levels_of(coarse, labels)  # (2, 8)
    outs = []
    for chunk in (1, 3, 8):
        torch.manual_seed(7)
        with torch.no_grad():
            outs.append(enhance(coarse, labels, net, chunk=chunk))
    torch.manual_seed(7)
    outs.append(enhance(coarse, labels, net, chunk=5).detach())  # the module's forward
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=0, atol=1e-5 * float(outs[0].abs().max()))
    ct = outs[0]
    for b in range(2):
        for k in range(8):
            for c in range(1, 8):
                m = labels[b, k] == c
                if m.any():
                    want = 1000 * float(levels[b, c] + net.level_shift[c])
                    assert abs(float(ct[b, k][m].mean()) - want) < 1e-2


def test_level_skip_and_centring_gradcheck():
    g = torch.Generator().manual_seed(4)
    coarse = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    probs = torch.randn(2, 8, 5, 5, generator=g, dtype=torch.float64).softmax(1)
    probs.requires_grad_(True)
    resid = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    scale, shift = (torch.rand(8, generator=g, dtype=torch.float64),
                    torch.randn(8, generator=g, dtype=torch.float64))
    levels, level_shift = (torch.randn(2, 8, generator=g, dtype=torch.float64),
                           torch.randn(8, generator=g, dtype=torch.float64))

    def f(c, p, r):
        return level_skip(c, p, scale, shift, levels, level_shift) + centre_in_structures(r, p)

    assert torch.autograd.gradcheck(f, (coarse, probs, resid))
    # analytic: with one-hot rows the output is the level where a structure is
    onehot = F.one_hot(torch.tensor([[3]]), 8).permute(0, 2, 1)[..., None].double()
    got = level_skip(torch.zeros(1, 1, 1, 1, dtype=torch.float64), onehot, scale, shift,
                     levels[:1], level_shift)
    assert abs(float(got) - float(levels[0, 3] + level_shift[3])) < 1e-12
