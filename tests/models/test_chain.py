"""The one chain: shapes, provenance, replay, stand-in networks, gradients to z."""

import numpy as np
import pytest
import torch
from stand_ins import RecordingEnhancer, TinyMaterial, TinyShape

from fedsim_app.errors import FedSimError
from fedsim_app.io.grid import Grid
from fedsim_app.models.enhance import HU_SCALE, NO_ENHANCER
from fedsim_app.models.generator import (
    ChainConfig,
    Generator,
    coarse_target,
    enhancer_conditioning,
    fix_mat,
    label_attenuation,
    material_to_mu,
    mu_to_material,
)
from fedsim_app.shape import SoftConfig, voxelize
from fedsim_app.sites import get_site

CFG = ChainConfig(label_size=32, coarse_size=16, soft=SoftConfig(tau_mm=3.0))


@pytest.fixture(scope="module")
def gen():
    return Generator("A", config=CFG, device="cpu")


def test_chain_shapes_and_provenance(gen):
    out = gen(params=torch.zeros(2, 21))
    assert out.params.shape == (2, 21)
    assert out.labels.shape == (2, 32, 32, 32) and out.labels.dtype == torch.int64
    assert out.material.shape == (2, 1, 16, 16, 16)
    assert out.mu.shape == out.coarse_hu.shape == (2, 16, 16, 16)
    assert out.ct_hu.shape == (2, 32, 32, 32) and out.soft_labels is None
    assert "Fix-Mat" in out.material_source and out.enhancer_source == NO_ENHANCER
    assert out.site == "A" and out.energy_keV == pytest.approx(
        get_site("A").scanner.effective_energy_keV)
    # the labels are the exact voxelization of the decoded shape
    verts = gen.ssm.decode(np.zeros(21))
    np.testing.assert_array_equal(out.labels[0].numpy(), voxelize(gen.ssm, verts, gen.grid))
    # contrast blood images brighter than myocardium in the coarse CT's upsampling
    ct, lab = out.ct_hu[0], out.labels[0]
    assert ct[lab == 1].mean() > ct[lab == 2].mean() + 50
    assert out.provenance()["material_source"] == out.material_source


def test_same_params_same_output(gen):
    p = torch.as_tensor(np.random.default_rng(3).uniform(-0.5, 0.5, (1, 21)))
    a = gen(params=p.float())
    b = Generator("A", config=CFG, device="cpu")(params=p.float())
    for attr in ("labels", "material", "mu", "coarse_hu", "ct_hu"):
        assert torch.equal(getattr(a, attr), getattr(b, attr)), attr


def test_sites_image_the_same_shape_differently(gen):
    p = torch.zeros(1, 21)
    a = gen(params=p)
    c = Generator("C", ssm=gen.ssm, config=CFG, device="cpu")(params=p)
    assert torch.equal(a.labels, c.labels)
    assert not torch.allclose(a.mu, c.mu)  # another effective energy


def test_fix_mat_hard_equals_one_hot_probabilities():
    rng = np.random.default_rng(0)
    labels = torch.as_tensor(rng.integers(0, 8, (2, 8, 8, 8)))
    table = torch.linspace(0.0, 0.03, 8, dtype=torch.float64)
    hard = fix_mat(labels, table, size=4)
    probs = torch.nn.functional.one_hot(labels, 8).permute(0, 4, 1, 2, 3).double()
    soft = fix_mat(probs, table, size=4)
    assert hard.shape == (2, 4, 4, 4)
    torch.testing.assert_close(hard, soft)
    # a block mean: the mean of the map is the mean of the table over the labels
    torch.testing.assert_close(hard.mean(), table[labels].mean())
    with pytest.raises(FedSimError, match="equal blocks"):
        fix_mat(labels, table, size=3)


def test_material_mu_round_trip_and_water():
    profile = get_site("B").scanner
    table = label_attenuation(profile, dtype=torch.float64)
    assert table.shape == (8,) and bool((table > 0).all())
    assert table[1] > table[2]  # iodinated LV blood over myocardium
    m = torch.zeros(1, 1, 2, 2, 2, dtype=torch.float64)
    mu = material_to_mu(m, profile)
    from fedsim_app.ctsim.simulate import water_mu_per_mm
    torch.testing.assert_close(mu, torch.full((1, 2, 2, 2), water_mu_per_mm(profile),
                                              dtype=torch.float64))
    torch.testing.assert_close(mu_to_material(material_to_mu(m - 0.3, profile), profile), m - 0.3)


def test_coarse_target_shapes():
    v = torch.arange(8.0).reshape(2, 2, 2).repeat_interleave(4, 0).repeat_interleave(
        4, 1).repeat_interleave(4, 2)  # (8, 8, 8), 2³ blocks of constants
    t = coarse_target(v.numpy(), size=2)
    assert t.shape == (1, 2, 2, 2)
    torch.testing.assert_close(t[0], torch.arange(8.0).reshape(2, 2, 2))
    torch.testing.assert_close(coarse_target(v[None], size=2, mode="area")[0], t[0])
    with pytest.raises(FedSimError):
        coarse_target(v, size=2, mode="nearest")


def test_enhancer_conditioning_layout():
    coarse = torch.full((2, 4, 4, 4), 500.0)
    coarse[1] = -1000.0
    labels = torch.zeros(2, 8, 6, 6, dtype=torch.int64)
    labels[1, 3] = 2
    up, lab, k = enhancer_conditioning(coarse, labels, slices=[0, 3])
    assert up.shape == (4, 1, 6, 6) and lab.shape == (4, 6, 6) and k.shape == (4,)
    torch.testing.assert_close(up[0], torch.full((1, 6, 6), 500.0 / HU_SCALE))
    torch.testing.assert_close(up[3], torch.full((1, 6, 6), -1.0))
    assert torch.equal(lab[3], torch.full((6, 6), 2)) and lab.dtype == torch.int64
    torch.testing.assert_close(k, torch.tensor([0.0, 3 / 8, 0.0, 3 / 8]))


def test_stand_in_networks_are_called_with_the_agreed_shapes(gen):
    torch.manual_seed(0)
    g = Generator("A", ssm=gen.ssm, config=CFG, device="cpu", g_shape=TinyShape(),
                  g_material=TinyMaterial(), enhancer=RecordingEnhancer())
    out = g(z=torch.randn(2, 32))
    assert "G_shape TinyShape" in out.shape_source
    assert "G_material TinyMaterial" in out.material_source
    assert "RecordingEnhancer" in out.enhancer_source
    calls = g.enhancer.calls
    assert sum(c[0][0] for c in calls) == 2 * 32  # every slice of both volumes
    for shape, dtype, lab_shape, lab_dtype, _ in calls:  # 2·n_k rows, volume-major
        assert shape[1:] == (1, 32, 32) and dtype == torch.float32 and shape[0] % 2 == 0
        assert lab_shape == (shape[0], 32, 32) and lab_dtype == torch.int64
    k = torch.cat([c[4].reshape(2, -1) for c in calls], 1)  # (2, 32): k/K of each row
    torch.testing.assert_close(k, (torch.arange(32) / 32).repeat(2, 1))
    # zero offsets: the enhanced CT is the upsampled coarse CT
    torch.testing.assert_close(out.ct_hu, Generator("A", ssm=gen.ssm, config=CFG,
                                                    device="cpu").enhance(out.coarse_hu,
                                                                          out.labels)[0])
    with pytest.raises(FedSimError, match="latent"):
        g(params=torch.zeros(1, 21))  # G_material needs z


def test_gradient_reaches_z_through_g_shape_and_soft_labels(gen):
    torch.manual_seed(1)
    g = Generator("A", ssm=gen.ssm, config=CFG, device="cpu", g_shape=TinyShape())
    z = torch.randn(1, 32, requires_grad=True)
    out = g(z=z, soft=True)
    assert out.soft_labels.shape == (1, 8, 32, 32, 32)
    out.coarse_hu.mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert g.g_shape.lin.weight.grad.abs().sum() > 0


def test_gradient_reaches_z_through_g_material_and_enhancer(gen):
    torch.manual_seed(2)
    g = Generator("A", ssm=gen.ssm, config=CFG, device="cpu", g_material=TinyMaterial(),
                  enhancer=RecordingEnhancer())
    z = torch.randn(2, 32, requires_grad=True)
    out = g(params=torch.zeros(2, 21), z=z)
    (out.ct_hu / 1000).square().mean().backward()
    assert z.grad.abs().sum() > 0 and g.g_material.lin.weight.grad.abs().sum() > 0
    assert g.enhancer.offset.grad.abs().sum() > 0


def test_bad_inputs_are_clear(gen):
    with pytest.raises(FedSimError, match="21"):
        gen(params=torch.zeros(2, 20))
    with pytest.raises(FedSimError, match="no shape generator"):
        gen()
    with pytest.raises(FedSimError, match="unknown site"):
        Generator("Z")
    with pytest.raises(FedSimError, match="divide"):
        ChainConfig(label_size=40, coarse_size=16)
    bad = Generator("A", config=CFG, grid=Grid((32, 32, 30), (6.5,) * 3), device="cpu")
    with pytest.raises(FedSimError, match="cubic"):
        _ = bad.grid


@pytest.mark.cuda
def test_cpu_cuda_parity(gen, device):
    if device == "cpu":
        pytest.skip("the CPU is the reference")
    p = torch.as_tensor(np.random.default_rng(5).uniform(-0.5, 0.5, (2, 21))).float()
    a = gen(params=p)
    b = Generator("A", ssm=gen.ssm, config=CFG, device=device)(params=p.to(device))
    assert torch.equal(a.labels, b.labels.cpu())
    torch.testing.assert_close(a.mu, b.mu.cpu(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(a.coarse_hu, b.coarse_hu.cpu(), rtol=1e-3, atol=0.5)
    torch.testing.assert_close(a.ct_hu, b.ct_hu.cpu(), rtol=1e-3, atol=0.5)


def test_label_fractions_count_each_block_as_the_one_hot_mean():
    from fedsim_app.models.material import label_fractions

    rng = np.random.default_rng(3)
    labels = torch.as_tensor(rng.integers(0, 8, (2, 8, 12, 4)))  # not cubic: 4 × 6 × 2
    frac = label_fractions(labels, 2, torch.float64)
    onehot = torch.nn.functional.one_hot(labels, 8).permute(0, 4, 1, 2, 3).double()
    ref = torch.nn.functional.avg_pool3d(onehot, (4, 6, 2))
    torch.testing.assert_close(frac, ref)
    torch.testing.assert_close(frac.sum(1), torch.ones(2, 2, 2, 2, dtype=torch.float64))
    with pytest.raises(FedSimError, match="equal blocks"):
        label_fractions(labels, 3)
