"""CoarseCT: the cached system matrix equals diffct's direct path; gradients; batching."""

import torch

from fedsim_app.ctsim.coarse import CoarseCT, _cache_file
from fedsim_app.ctsim.scanner import load_scanner
from fedsim_app.ctsim.simulate import add_quantum_noise, mu_to_hu, photons_per_pixel


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
