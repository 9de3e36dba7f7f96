"""CoarseCT: the cached system matrix equals diffct's direct path; gradients; batching."""

import pytest
import torch

from fedsim_app.ctsim.coarse import CoarseCT, _cache_file
from fedsim_app.ctsim.scanner import load_scanner
from fedsim_app.ctsim.simulate import (
    add_quantum_noise,
    mu_to_hu,
    photons_per_pixel,
    water_mu_per_mm,
)


def test_matrix_equals_direct_diffct_path(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSIM_CACHE", str(tmp_path))
    ct = CoarseCT(load_scanner("site_a"), size=8, n_views=10)
    g = torch.Generator().manual_seed(0)
    mu = 0.03 * torch.rand((3, 8, 8, 8), generator=g)
    via_matrix = ct(mu)
    direct = mu_to_hu(ct.operator.fdk(ct.operator(mu)), ct.profile)
    scale = direct.abs().max()
    assert float((via_matrix - direct).abs().max() / scale) < 1e-5
    # Cached on disk, and a second simulator loads the same matrix.
    assert _cache_file(ct.operator).exists()
    again = CoarseCT(load_scanner("site_a"), size=8, n_views=10)
    assert torch.equal(again.matrix, ct.matrix)
    # Batched render equals one-by-one.
    assert float((ct(mu)[1] - ct(mu[1])).abs().max() / scale) < 1e-5


def test_gradcheck_coarse_float64(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSIM_CACHE", str(tmp_path))
    ct = CoarseCT(load_scanner("site_b"), size=6, n_views=8, precision="float64",
                  use_cache=False)
    mu = (0.02 * torch.rand((2, 6, 6, 6), dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(ct, (mu,), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
    # The gradient is the transposed diffct pipeline: check one vector-Jacobian product.
    w = torch.randn(6, 6, 6, dtype=torch.float64)
    x = mu[0].detach().clone().requires_grad_()
    (ct.reconstruct_mu(x).cpu() * w).sum().backward()  # results live on the matrix device
    y = mu[0].detach().clone().requires_grad_()
    (ct.operator.fdk(ct.operator(y)).cpu() * w).sum().backward()
    assert torch.allclose(x.grad, y.grad, rtol=1e-8, atol=1e-10)


def test_projection_domain_noise_equals_direct_path(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSIM_CACHE", str(tmp_path))
    profile = load_scanner("site_c")
    ct = CoarseCT(profile, size=6, n_views=8, use_cache=False)
    ops = ct.noise_operators
    g = torch.Generator().manual_seed(4)
    mu = 0.03 * torch.rand((2, 6, 6, 6), generator=g)
    sino = torch.rand((2, *ct.operator.range_shape), generator=g)
    # The sparse maps reproduce diffct's projector and FDK.
    p_direct = ct.operator(mu)
    assert float((ops.project(mu) - p_direct).abs().max() / p_direct.abs().max()) < 1e-5
    f_direct = ct.operator.fdk(sino)
    assert float((ops.fdk(sino) - f_direct).abs().max() / f_direct.abs().max()) < 1e-5
    # A noisy render equals FDK of the noisy line integrals of the direct path.
    eps = torch.randn((2, *ct.operator.range_shape), generator=g)
    i0 = photons_per_pixel(profile, ct.operator)
    noisy = ct(mu, noise=True, differentiable_noise=True, eps=eps)
    direct = mu_to_hu(ct.operator.fdk(add_quantum_noise(p_direct, i0, differentiable=True,
                                                        eps=eps)), profile)
    assert float((noisy - direct).abs().max() / direct.abs().max()) < 1e-5
    assert (noisy - ct(mu)).std() > 0
    # Poisson draws replay with the generator, and gradients flow in both variants.
    a = ct(mu, noise=True, generator=torch.Generator().manual_seed(1))
    b = ct(mu, noise=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    x = mu.clone().requires_grad_()
    ct(x, noise=True, differentiable_noise=True, eps=eps).square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("site", ["site_a", "site_b", "site_c"])
def test_coarse_scan_keeps_a_coarse_volumes_values(site, tmp_path, monkeypatch):
    """At the chain's coarse grid (16³ of 13 mm) every site's scan keeps a voxel's value
    (a detector scaled to the 13 mm voxel kept 20 % of it at site B, 48 % at A) and the
    mean HU of 3³-voxel inserts in a water body, what the material loss compares."""
    monkeypatch.setenv("FEDSIM_CACHE", str(tmp_path))
    profile = load_scanner(site)
    ct = CoarseCT(profile, size=16, spacing_mm=13.0, use_cache=False)
    mu_w = water_mu_per_mm(profile)
    unit = torch.zeros(16, 16, 16)
    unit[8, 8, 8] = 1.0
    psf = ct.operator.fdk(ct.operator(unit))
    assert 0.9 < float(psf[8, 8, 8]) < 1.1
    hu = torch.full((16, 16, 16), -1000.0)
    _, yy, xx = torch.meshgrid(*(torch.arange(16.0),) * 3, indexing="ij")
    hu[(yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 6.5**2] = 0.0  # water cylinder
    inserts = {(8, 5, 5): 400.0, (8, 9, 9): -700.0, (4, 5, 9): 150.0}
    for (z, y, x), value in inserts.items():
        hu[z - 1:z + 2, y - 1:y + 2, x - 1:x + 2] = value
    out = mu_to_hu(ct.operator.fdk(ct.operator(mu_w * (1 + hu / 1000.0))), profile)
    for (z, y, x), value in inserts.items():
        block = (slice(z - 1, z + 2), slice(y - 1, y + 2), slice(x - 1, x + 2))
        assert abs(float(out[block].mean()) - value) < 30.0, (site, value)
