"""The acquisition pipeline: project → Beer–Lambert with quantum noise → log → FDK → HU.

Everything is a torch function of μ, so gradients reach the material map. Poisson noise
is not differentiable; ``differentiable_noise=True`` replaces it with its Gaussian
approximation I + √I·ε (ε ~ N(0, 1) drawn first, so the draw is a fixed input).
"""

from __future__ import annotations

from fedsim_app.ctsim.operator import CTOperator
from fedsim_app.ctsim.scanner import ScannerProfile


def water_mu_per_mm(profile: ScannerProfile) -> float:
    """μ of water at the profile's effective energy: the HU reference."""
    from fedsim_app.ctsim.materials import mu_per_mm

    return float(mu_per_mm("water", profile.effective_energy_keV))


def mu_to_hu(mu_per_mm, profile: ScannerProfile):
    """HU with the site's calibration: slope·1000(μ − μ_w)/μ_w + intercept."""
    mu_w = water_mu_per_mm(profile)
    return profile.hu_slope * 1000.0 * (mu_per_mm - mu_w) / mu_w + profile.hu_intercept


def hu_to_mu(hu, profile: ScannerProfile):
    """Inverse of `mu_to_hu`."""
    mu_w = water_mu_per_mm(profile)
    return ((hu - profile.hu_intercept) / profile.hu_slope / 1000.0 + 1.0) * mu_w


def photons_per_pixel(profile: ScannerProfile, op: CTOperator) -> float:
    """The profile's I0 rescaled to this operator's pixel area and number of views.

    The profile's dose is per native detector pixel and view; a coarser detector collects
    proportionally more photons per pixel, and fewer views share the same total dose.
    """
    du0, dv0 = profile.detector_pitch_mm
    du, dv = op.detector_pitch_mm
    return profile.photons_per_pixel * (du * dv) / (du0 * dv0) * profile.n_views / op.n_views


def add_quantum_noise(line_integrals, i0: float, *, generator=None, differentiable=False,
                      eps=None):
    """Noisy line integrals −ln(N/I0) with N ~ Poisson(I0·e^{−p}).

    Parameters
    ----------
    line_integrals : torch.Tensor
        Noise-free p (any shape).
    i0 : float
        Unattenuated photons per detector pixel.
    generator : torch.Generator, optional
        Source of the random draw (seed it to replay).
    differentiable : bool
        Gaussian reparameterisation N = I + √I·ε instead of a Poisson draw.
    eps : torch.Tensor, optional
        A pre-drawn ε (same shape as ``line_integrals``) for the differentiable path.
    """
    import torch

    expected = i0 * torch.exp(-line_integrals)
    if differentiable:
        if eps is None:
            eps = torch.randn(line_integrals.shape, generator=generator,
                              dtype=line_integrals.dtype).to(line_integrals.device)
        counts = expected + expected.clamp_min(1e-12).sqrt() * eps.to(expected.device)
    else:
        # Draw on the CPU so a CPU generator replays the same noise on any device.
        counts = torch.poisson(expected.detach().cpu(), generator=generator).to(expected.device)
    # A detector never reports fewer than ~one photon (log of zero is undefined).
    counts = counts.clamp_min(0.5)
    return -torch.log(counts / i0)


def simulate(mu_per_mm, profile: ScannerProfile, *, operator: CTOperator | None = None,
             noise: bool = True, generator=None, differentiable_noise: bool = False,
             n_views: int | None = None, spacing_mm=None):
    """Simulate a CT scan of a μ volume and return calibrated HU.

    Parameters
    ----------
    mu_per_mm : torch.Tensor
        (nz, ny, nx) or batched (..., nz, ny, nx) attenuation at the profile's effective
        energy, on a centred grid.
    profile : ScannerProfile
    operator : CTOperator, optional
        Reuse an operator; by default one is built for the volume's shape, ``spacing_mm``
        (default ``profile.spacing_mm``) and ``n_views`` (default ``profile.n_views``).
    noise, generator, differentiable_noise
        Quantum noise at the profile's dose (see `add_quantum_noise`).

    Returns
    -------
    torch.Tensor
        HU volume(s) of the same shape, differentiable w.r.t. ``mu_per_mm``.

    Examples
    --------
    >>> import torch
    >>> from fedsim_app.ctsim import load_scanner, simulate
    >>> hu = simulate(torch.zeros(8, 8, 8), load_scanner("site_a"), noise=False)
    >>> bool(hu.mean() < -900)
    True
    """
    op = operator or CTOperator.from_profile(
        profile, volume_shape=tuple(mu_per_mm.shape[-3:]),
        spacing_mm=profile.spacing_mm if spacing_mm is None else spacing_mm, n_views=n_views)
    p = op.forward(mu_per_mm)
    if noise:
        p = add_quantum_noise(p, photons_per_pixel(profile, op), generator=generator,
                              differentiable=differentiable_noise)
    return mu_to_hu(op.fdk(p), profile)
