"""Shapes, dtypes and gradient flow of the model's networks."""

import pytest
import torch

from fedsim_app.models.discriminator import SliceDiscriminator
from fedsim_app.models.enhancer import SiteEnhancer, conditioning
from fedsim_app.models.g_material import MaterialGenerator
from fedsim_app.models.g_shape import ShapeGenerator


def test_shape_generator_shape_range_and_gradient():
    g = ShapeGenerator()
    z = torch.randn(3, 32, requires_grad=True)
    out = g(z)
    assert out.shape == (3, 21) and out.dtype == torch.float32
    assert out.abs().max() <= 1
    out.sum().backward()
    assert z.grad.abs().sum() > 0
    assert all(p.grad is not None for p in g.parameters())


def test_shape_generator_saturates_at_one():
    g = ShapeGenerator()
    with torch.no_grad():
        g.head.bias.fill_(100.0)
    assert torch.allclose(g(torch.randn(2, 32)), torch.ones(2, 21))


def test_material_generator_shape_range_and_gradient():
    torch.manual_seed(0)
    g = MaterialGenerator()
    z = torch.randn(2, 32, requires_grad=True)
    probs = torch.softmax(torch.randn(2, 8, 32, 32, 32), 1).requires_grad_()
    out = g(z, probs)
    assert out.shape == (2, 1, 16, 16, 16) and out.dtype == torch.float32
    assert out.abs().max() <= 1
    out.square().mean().backward()
    assert z.grad.abs().sum() > 0 and probs.grad.abs().sum() > 0  # to the latents and shape


def test_material_generator_mixes_structures_and_surroundings_by_label_fraction():
    torch.manual_seed(1)
    g = MaterialGenerator().eval()
    z = torch.randn(1, 32)
    surroundings, values = g.parts(z)
    labels = torch.zeros(1, 32, 32, 32, dtype=torch.long)
    labels[0, :16] = 3  # the first half of the slices: structure 3
    labels[0, 16:, :, :16] = 5  # a quarter: structure 5
    labels[0, 16:17, 2:, 16:] = 1  # one label slice, half of one coarse voxel's depth
    with torch.no_grad():
        out = g(z, labels)[0, 0]
    torch.testing.assert_close(out[:8], values[0, 2].expand(8, 16, 16))  # structure 3
    torch.testing.assert_close(out[8:, :, :8], values[0, 4].expand(8, 16, 8))  # structure 5
    torch.testing.assert_close(out[9:, :, 8:], surroundings[0, 0, 9:, :, 8:])
    # a coarse voxel half structure 1, half surroundings: the mean of the two
    torch.testing.assert_close(out[8, 2:, 8:],
                               (values[0, 0] + surroundings[0, 0, 8, 2:, 8:]) / 2)


def test_material_generator_can_vary_in_the_centre():
    # nearest ×4 of a 1³ code (the paper's first layer) leaves the centre 2³ of the map
    # one value whatever the weights; the learnt projection does not
    torch.manual_seed(2)
    g = MaterialGenerator().eval()
    surroundings, _ = g.parts(torch.randn(1, 32))
    centre = surroundings[0, 0, 7:9, 7:9, 7:9]
    assert float(centre.max() - centre.min()) > 1e-4


def test_material_generator_refuses_odd_size():
    with pytest.raises(ValueError, match="16"):
        MaterialGenerator(size=12)


def test_conditioning_channels():
    coarse = torch.full((2, 1, 4, 4), 0.5)
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[1, 0, 0] = 7
    cond = conditioning(coarse, labels, torch.tensor([0.0, 0.25]), 8)
    assert cond.shape == (2, 10, 4, 4)
    assert torch.equal(cond[:, 0], coarse[:, 0])
    assert cond[1, 1 + 7, 0, 0] == 1 and cond[1, 1, 0, 0] == 0
    assert torch.equal(cond[:, 1:9].sum(1), torch.ones(2, 4, 4))
    assert torch.all(cond[1, 9] == 0.25) and torch.all(cond[0, 9] == 0)


def test_conditioning_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        conditioning(torch.zeros(2, 1, 4, 4), torch.zeros(2, 5, 4, dtype=torch.long),
                      torch.zeros(2), 8)


def _enhancer_inputs(n=3, size=16):
    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(n, 1, size, size, generator=g) * 0.1
    labels = torch.randint(0, 8, (n, size, size), generator=g)
    return coarse, labels, torch.linspace(0, 1, n)


def test_enhancer_starts_as_identity_and_is_deterministic_given_noise():
    net = SiteEnhancer(width=8, n_down=2, spade_hidden=8)
    coarse, labels, k = _enhancer_inputs()
    out = net(coarse, labels, k)
    assert out.shape == coarse.shape and out.dtype == torch.float32
    assert torch.equal(out, coarse)  # zero-initialised residual
    with torch.no_grad():
        net.tail[1].weight.normal_()
    noise = torch.randn_like(coarse)
    a = net(coarse, labels, k, noise=noise)
    b = net(coarse, labels, k, noise=noise)
    assert torch.equal(a, b)
    assert not torch.equal(a, net(coarse, labels, k, noise=-noise))


def test_enhancer_gradient_reaches_coarse_and_weights():
    net = SiteEnhancer(width=8, n_down=1, spade_hidden=8)
    with torch.no_grad():
        net.tail[1].weight.normal_(std=0.1)
    coarse, labels, k = _enhancer_inputs()
    coarse.requires_grad_(True)
    net(coarse, labels, k).square().mean().backward()
    assert coarse.grad.abs().sum() > 0
    assert net.head.weight.grad.abs().sum() > 0


def test_enhancer_refuses_indivisible_slices():
    net = SiteEnhancer(width=8, n_down=2, spade_hidden=8)
    coarse, labels, k = _enhancer_inputs(size=18)
    with pytest.raises(ValueError, match="divisible"):
        net(coarse, labels, k)


def test_discriminator_outputs_per_scale():
    d = SliceDiscriminator(channels=8, num_d=2, num_layers_d=2, slice_size=64)
    img = torch.randn(2, 1, 64, 64, requires_grad=True)
    logits, feats = d(img, torch.randint(0, 8, (2, 64, 64)))
    assert len(logits) == 2 and len(feats) == 2
    assert all(x.ndim == 4 and x.shape[:2] == (2, 1) for x in logits)
    assert all(len(f) >= 2 for f in feats)
    sum(x.mean() for x in logits).backward()
    assert img.grad.abs().sum() > 0


def test_soft_labels_condition_like_one_hot_and_carry_gradient():
    coarse, labels, k = _enhancer_inputs()
    onehot = torch.nn.functional.one_hot(labels, 8).permute(0, 3, 1, 2).float()
    assert torch.equal(conditioning(coarse, labels, k, 8), conditioning(coarse, onehot, k, 8))
    probs = onehot.clone().requires_grad_(True)
    net = SiteEnhancer(width=8, n_down=1, spade_hidden=8)
    with torch.no_grad():
        net.tail[1].weight.normal_(std=0.1)
    net(coarse, probs, k).square().mean().backward()
    assert probs.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="probabilities"):
        conditioning(coarse, onehot[:, :5], k, 8)
