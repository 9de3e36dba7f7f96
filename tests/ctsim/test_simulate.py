"""The acquisition pipeline: HU accuracy, noise scaling, replay and gradients."""

import dataclasses

import numpy as np
import pytest
import torch

from fedsim_app.ctsim.operator import CTOperator
from fedsim_app.ctsim.phantoms import water_cylinder
from fedsim_app.ctsim.scanner import load_scanner
from fedsim_app.ctsim.simulate import (
    add_quantum_noise,
    hu_to_mu,
    mu_to_hu,
    photons_per_pixel,
    simulate,
    water_mu_per_mm,
)

N = 32


@pytest.fixture(scope="module")
def water_scan():
    """site_a, 32³ grid over its 384 mm field, a 100 mm-radius water cylinder."""
    profile = load_scanner("site_a")
    spacing = profile.fov_mm / N
    op = CTOperator.from_profile(profile, volume_shape=(N,) * 3, spacing_mm=spacing,
                                 n_views=64, device="cpu")
    mask = water_cylinder((N,) * 3, spacing, 100.0)
    mu = torch.from_numpy(mask.astype(np.float32) * water_mu_per_mm(profile))
    return profile, op, mask, mu, op.forward(mu)


def _rois(mask):
    from scipy.ndimage import binary_dilation, binary_erosion

    z = slice(N // 2 - 4, N // 2 + 4)
    yy, xx = np.mgrid[:N, :N] - (N - 1) / 2
    inside_fov = (yy**2 + xx**2) < (0.45 * N) ** 2
    water = binary_erosion(mask[N // 2], iterations=2)
    air = ~binary_dilation(mask[N // 2], iterations=3) & inside_fov
    return z, water, air


def test_water_and_air_hu_at_standard_dose(water_scan):
    profile, op, mask, mu, p = water_scan
    g = torch.Generator().manual_seed(3)
    noisy = add_quantum_noise(p, photons_per_pixel(profile, op), generator=g)
    hu = mu_to_hu(op.fdk(noisy), profile).numpy()
    z, water, air = _rois(mask)
    assert hu[z][:, water].mean() == pytest.approx(profile.hu_intercept, abs=10)
    assert hu[z][:, air].mean() == pytest.approx(-1000 * profile.hu_slope
                                                 + profile.hu_intercept, abs=20)


def test_noise_std_scales_with_inverse_sqrt_dose(water_scan):
    profile, op, mask, mu, p = water_scan
    clean = op.fdk(p)
    z, water, _ = _rois(mask)
    stds = []
    for i0 in (2e4, 8e4):
        g = torch.Generator().manual_seed(11)
        noise = (op.fdk(add_quantum_noise(p, i0, generator=g)) - clean).numpy()
        stds.append(noise[z][:, water].std())
    assert stds[0] / stds[1] == pytest.approx(2.0, rel=0.15)


def test_replay_and_calibration_round_trip():
    profile = load_scanner("site_b")
    mu = torch.full((6, 6, 6), 0.02)
    a = simulate(mu, profile, generator=torch.Generator().manual_seed(5), n_views=8)
    b = simulate(mu, profile, generator=torch.Generator().manual_seed(5), n_views=8)
    c = simulate(mu, profile, generator=torch.Generator().manual_seed(6), n_views=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    hu = torch.tensor([-1000.0, 0.0, 350.0])
    assert torch.allclose(mu_to_hu(hu_to_mu(hu, profile), profile), hu, atol=1e-3)
    # The site's calibration offsets show up in water.
    assert float(mu_to_hu(torch.tensor(water_mu_per_mm(profile)), profile)) == pytest.approx(
        profile.hu_intercept)


def test_differentiable_noise_gives_gradients():
    profile = load_scanner("site_c")
    mu = torch.full((6, 6, 6), 0.02, requires_grad=True)
    hu = simulate(mu, profile, noise=True, differentiable_noise=True, n_views=8,
                  generator=torch.Generator().manual_seed(0))
    hu.square().mean().backward()
    assert torch.isfinite(mu.grad).all() and mu.grad.abs().sum() > 0


def test_gradcheck_direct_path_float64(device):
    profile = dataclasses.replace(load_scanner("site_a"))
    op = CTOperator.from_profile(profile, volume_shape=(6, 6, 6), spacing_mm=40.0, n_views=6,
                                 precision="float64", device=device)
    eps = torch.randn(op.range_shape, generator=torch.Generator().manual_seed(1),
                      dtype=torch.float64).to(device)
    i0 = 1e4

    def f(mu):
        p = add_quantum_noise(op.forward(mu), i0, differentiable=True, eps=eps)
        return mu_to_hu(op.fdk(p), profile)

    mu = (0.02 * torch.rand((6, 6, 6), dtype=torch.float64)).to(device).requires_grad_()
    # CUDA's atomic adds sum in varying order: backward repeats to ~1e-16, not bit for bit
    nondet = 1e-12 if device == "cuda" else 0.0
    assert torch.autograd.gradcheck(f, (mu,), eps=1e-6, atol=1e-4, rtol=1e-3, fast_mode=True,
                                    nondet_tol=nondet,
                                    check_undefined_grad=False)
