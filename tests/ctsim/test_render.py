"""Full-resolution renders: the fast image-domain model against diffct physics."""

import numpy as np
import pytest
import torch

from fedsim_app.ctsim.materials import mu_per_mm
from fedsim_app.ctsim.measure import (
    mean_hu_per_tissue,
    mtf_from_disk_edge,
    noise_power_spectrum,
    nps_mean_frequency,
)
from fedsim_app.ctsim.phantoms import CHEST_CLASSES, chest_phantom, water_cylinder
from fedsim_app.ctsim.render import render, render_physics
from fedsim_app.ctsim.scanner import load_scanner
from fedsim_app.ctsim.simulate import mu_to_hu


def test_measurement_helpers_on_known_inputs():
    rng = np.random.default_rng(0)
    white = rng.normal(0, 10.0, (8, 32, 32))
    f, nps, std = noise_power_spectrum(white, (1.0, 1.0, 1.0))
    assert std == pytest.approx(10.0, rel=0.05)
    # White noise: flat NPS at σ²·dx·dy.
    assert nps[1:].mean() == pytest.approx(100.0, rel=0.1)
    assert np.allclose(nps[1:], 100.0, rtol=0.5)
    assert nps_mean_frequency(f, nps) == pytest.approx(f.mean(), rel=0.1)
    # A perfect (pixel-sampled) disk edge: MTF50 near the sampling limit.
    disk = water_cylinder((4, 64, 64), 1.0, 20.0).astype(float)
    _, mtf, mtf50 = mtf_from_disk_edge(disk, (1.0, 1.0, 1.0), (0.0, 0.0), 20.0)
    assert mtf[0] == pytest.approx(1.0) and mtf50 > 0.3
    labels = np.zeros((5, 5, 5), int)
    labels[1:4, 1:4, 1:4] = 1
    hu = np.where(labels == 1, 40.0, -1000.0)
    assert mean_hu_per_tissue(hu, labels, {1: "muscle"}, erode=1) == {"muscle": 40.0}


def test_fast_render_tissue_hu_and_replay():
    profile = load_scanner("site_b")
    n = 32
    spacing = (profile.fov_mm / n,) * 3
    labels = chest_phantom((n, n, n), spacing)
    hu = render(labels, CHEST_CLASSES, profile, spacing_mm=spacing, noise=False).numpy()
    z = slice(n // 2 - 3, n // 2 + 3)
    means = mean_hu_per_tissue(hu[z], labels[z], {1: "soft_tissue", 3: "lung"})
    # Lung sits next to denser tissue on all sides: the MTF blur leaks into the eroded mask.
    for name, tol in (("soft_tissue", 15), ("lung", 35)):
        mu = mu_per_mm(name, profile.effective_energy_keV)
        ideal = float(mu_to_hu(torch.tensor(mu), profile))
        assert means[name] == pytest.approx(ideal, abs=tol)
    a = render(labels, CHEST_CLASSES, profile, spacing_mm=spacing,
               generator=torch.Generator().manual_seed(2))
    b = render(labels, CHEST_CLASSES, profile, spacing_mm=spacing,
               generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and (a - torch.from_numpy(hu)).std() > 0.1


@pytest.fixture(scope="module")
def both_fidelities():
    """site_a on a 40³ chest phantom (9.6 mm voxels), 64 views: physics ~30 s on 2 cores."""
    profile = load_scanner("site_a")
    n = 40
    spacing = (profile.fov_mm / n,) * 3
    labels = chest_phantom((n, n, n), spacing)
    g = torch.Generator().manual_seed(0)
    phys, phys_clean = render_physics(labels, CHEST_CLASSES, profile, spacing_mm=spacing,
                                      generator=g, n_views=64, return_noise_free=True)
    fast = render(labels, CHEST_CLASSES, profile, spacing_mm=spacing, generator=g, n_views=64)
    fast_clean = render(labels, CHEST_CLASSES, profile, spacing_mm=spacing, noise=False,
                        n_views=64)
    arrays = [t.cpu().numpy() for t in (phys, phys_clean, fast, fast_clean)]
    return profile, labels, spacing, arrays


@pytest.mark.slow
def test_fast_matches_physics(both_fidelities):
    profile, labels, spacing, (phys, phys_clean, fast, fast_clean) = both_fidelities
    n = labels.shape[0]
    z = slice(n // 2 - 4, n // 2 + 4)  # central slices: FDK's cone-angle errors are small
    roi = (z, slice(n // 4, 3 * n // 4), slice(n // 4, 3 * n // 4))

    # Noise: magnitude within 25%, NPS texture (mean frequency) within 15%.
    f, nps_p, std_p = noise_power_spectrum((phys - phys_clean)[roi], spacing)
    _, nps_f, std_f = noise_power_spectrum((fast - fast_clean)[roi], spacing)
    assert std_f == pytest.approx(std_p, rel=0.25)
    assert nps_mean_frequency(f, nps_f) == pytest.approx(nps_mean_frequency(f, nps_p), rel=0.15)

    # Resolution: MTF50 at the body's outer edge within 15%.
    radius = 0.42 * n * spacing[1]
    mtf50 = [mtf_from_disk_edge(v, spacing, (0.0, 0.0), radius, z_slices=z)[2]
             for v in (phys_clean, fast_clean)]
    assert mtf50[1] == pytest.approx(mtf50[0], rel=0.15)

    # HU per tissue (central slices, masks eroded by one voxel). Physics includes beam
    # hardening with the scanner's water correction, so water-like tissues agree closely
    # and high-Z ones (iodine, bone) read lower than the monochromatic model.
    names = {k: v for k, v in CHEST_CLASSES.items() if v in
             ("soft_tissue", "lung", "blood_iodine", "bone")}
    hu_p = mean_hu_per_tissue(phys_clean[z], labels[z], names)
    hu_f = mean_hu_per_tissue(fast_clean[z], labels[z], names)
    assert hu_f["soft_tissue"] == pytest.approx(hu_p["soft_tissue"], abs=25)
    assert hu_f["lung"] == pytest.approx(hu_p["lung"], abs=40)
    for dense in ("blood_iodine", "bone"):
        assert (hu_f[dense] + 1000) == pytest.approx(hu_p[dense] + 1000, rel=0.15)


def test_per_class_contrast_concentration():
    from fedsim_app.ctsim.render import mu_at_energy

    profile = load_scanner("site_a")
    labels = np.array([[[0, 1, 2]]])
    mu = mu_at_energy(labels, {0: "air", 1: ("blood_iodine", 5.0), 2: "blood_iodine"}, profile)
    e = profile.effective_energy_keV
    assert mu[0, 0, 1] == pytest.approx(mu_per_mm("blood_iodine", e, iodine_mg_per_ml=5.0))
    assert mu[0, 0, 2] == pytest.approx(
        mu_per_mm("blood_iodine", e, iodine_mg_per_ml=profile.iodine_mg_per_ml))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_physics_render_on_cuda_matches_cpu():
    """The whole physics chain (polychromatic projection, blur, precorrection, FDK)."""
    profile = load_scanner("site_c")
    n = 24
    spacing = (profile.fov_mm / n,) * 3
    labels = chest_phantom((n, n, n), spacing)
    kw = dict(spacing_mm=spacing, noise=False, n_views=48)
    cpu = render_physics(labels, CHEST_CLASSES, profile, device="cpu", **kw)
    gpu = render_physics(labels, CHEST_CLASSES, profile, device="cuda", **kw)
    assert gpu.device.type == "cuda"
    assert float((cpu - gpu.cpu()).abs().max()) < 1.0  # HU, float32 on both

