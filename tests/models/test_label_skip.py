"""The enhancer's label-wise skip: the least-squares fit (analytic answers), the centring
of the network's residual inside each structure, and their gradients."""

import torch

from fedsim_app.models.enhancer import (
    SiteEnhancer,
    centre_in_structures,
    fit_label_skip,
    label_skip,
)


def _volumes(b=3, k=6, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (b, k, n, n), generator=g)  # labels 4..7 absent
    coarse = torch.randn(b, k, n, n, generator=g, dtype=torch.float64).float()
    return labels, coarse, g


def test_fit_recovers_an_exact_affine_map_per_label():
    labels, coarse, _ = _volumes()
    scale = torch.tensor([1.1, 0.2, -0.5, 0.0, 1, 1, 1, 1])
    shift = torch.tensor([0.0, 0.3, 0.45, -0.1, 0, 0, 0, 0])
    real = scale[labels] * coarse + shift[labels]
    got_scale, got_shift = fit_label_skip(coarse, real, labels, 8)
    torch.testing.assert_close(got_scale[:4], scale[:4], atol=1e-5, rtol=0)
    torch.testing.assert_close(got_shift[:4], shift[:4], atol=1e-5, rtol=0)
    # labels no volume has keep the coarse CT as it is
    assert got_scale[4:].tolist() == [1.0] * 4 and got_shift[4:].tolist() == [0.0] * 4


def test_fit_weighs_every_volume_the_same():
    # label 1 fills 1 voxel of volume 0 (real 1.0) and 99 of volume 1 (real 0.0); coarse
    # constant: scale 0 and the shift is the mean of the two volumes' means, 0.5 (a
    # voxel-weighted fit would say 0.01)
    labels = torch.zeros(2, 1, 10, 10, dtype=torch.long)
    labels[0, 0, 0, 0] = 1
    labels[1, 0].fill_(1)
    labels[1, 0, 0, 0] = 0
    real = torch.zeros(2, 1, 10, 10)
    real[0, 0, 0, 0] = 1.0
    coarse = torch.full((2, 1, 10, 10), 0.2)
    scale, shift = fit_label_skip(coarse, real, labels, 8)
    assert float(scale[1]) == 0.0
    assert abs(float(shift[1]) - 0.5) < 1e-6


def test_centring_zeroes_each_structures_mean_in_each_slice_and_keeps_the_background():
    labels, _, g = _volumes(b=1, k=5)
    lab = labels[0]  # (5, 8, 8) as five slices
    onehot = torch.nn.functional.one_hot(lab, 8).permute(0, 3, 1, 2).float()
    resid = torch.randn(5, 1, 8, 8, generator=g)
    out = centre_in_structures(resid, onehot)
    for c in range(1, 4):
        for i in range(5):
            m = lab[i] == c
            if m.any():
                assert abs(float(out[i, 0][m].mean())) < 1e-6
    bg = lab == 0
    torch.testing.assert_close(out[:, 0][bg], resid[:, 0][bg])


def test_enhancer_structure_levels_are_the_skips_whatever_the_weights():
    torch.manual_seed(0)
    net = SiteEnhancer(width=8, n_down=1, spade_hidden=8)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(std=0.2)
        net.skip_scale.copy_(torch.linspace(0.2, 1.0, 8))
        net.skip_shift.copy_(torch.linspace(-0.3, 0.4, 8))
    g = torch.Generator().manual_seed(1)
    coarse = torch.randn(4, 1, 16, 16, generator=g) * 0.3
    labels = torch.randint(0, 8, (4, 16, 16), generator=g)
    with torch.no_grad():
        out = net(coarse, labels, torch.rand(4, generator=g))
    onehot = torch.nn.functional.one_hot(labels, 8).permute(0, 3, 1, 2).float()
    base = label_skip(coarse, onehot, net.skip_scale, net.skip_shift)
    assert float((out - base).abs().max()) > 0.01  # the network does add something
    for c in range(1, 8):
        m = labels == c
        assert abs(float(out[:, 0][m].mean() - base[:, 0][m].mean())) < 1e-5


def test_enhancer_fit_skip_sets_its_buffers_and_they_travel_in_the_state_dict():
    labels, coarse, _ = _volumes()
    real = 0.5 * coarse + 0.2
    net = SiteEnhancer(width=8, n_down=1, spade_hidden=8)
    net.fit_skip(coarse, real, labels)
    torch.testing.assert_close(net.skip_scale[:4], torch.full((4,), 0.5), atol=1e-5, rtol=0)
    other = SiteEnhancer(width=8, n_down=1, spade_hidden=8)
    other.load_state_dict(net.state_dict())
    torch.testing.assert_close(other.skip_shift, net.skip_shift)
    assert not any(p is net.skip_scale for p in net.parameters())  # fitted, not descended


def test_skip_and_centring_gradcheck():
    g = torch.Generator().manual_seed(3)
    coarse = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(2, 8, 5, 5, generator=g, dtype=torch.float64)
    probs = logits.softmax(1).requires_grad_(True)  # soft labels: gradient to the shape
    resid = torch.randn(2, 1, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(8, generator=g, dtype=torch.float64)
    shift = torch.randn(8, generator=g, dtype=torch.float64)

    def f(c, p, r):
        return label_skip(c, p, scale, shift) + centre_in_structures(r, p)

    assert torch.autograd.gradcheck(f, (coarse, probs, resid))
