"""Full-resolution CT renders of a tissue-class volume, in two fidelities.

``physics``: diffct at full resolution. Each material's path length is projected (one
batched projection), the detected intensity is summed over the tube spectrum
(beam hardening) when the profile asks for it, blurred by the detector, Poisson noise is
drawn at the profile's dose, then log, FDK and HU. Tens of seconds at 64³ on a CPU.

``fast``: image domain. The ideal HU (μ at the effective energy) is filtered by the
scanner's modulation transfer function (ramp window × backprojection interpolation ×
detector blur) and noise with the FDK noise power spectrum (ramp × window² in-plane) is
added at the standard deviation FDK theory predicts for this dose and patient size.
Both use the same `noise_model` quantities, so they agree by construction where the
image-domain model holds (tests/ctsim/test_render.py measures how well).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from fedsim_app.ctsim._diffct import quiet_diffct
from fedsim_app.ctsim.materials import mu_per_mm
from fedsim_app.ctsim.operator import CTOperator
from fedsim_app.ctsim.scanner import ScannerProfile
from fedsim_app.ctsim.simulate import mu_to_hu, photons_per_pixel, water_mu_per_mm

FIDELITIES = ("fast", "physics")


def _materials(labels: np.ndarray, class_materials: Mapping, profile: ScannerProfile):
    """Present class value → (material name, iodine mg/mL).

    ``class_materials`` values are a material name (contrast at the profile's protocol
    concentration) or a ``(name, iodine_mg_per_ml)`` pair (per-class contrast timing).
    """
    present = [int(v) for v in np.unique(labels)]
    missing = [v for v in present if v not in class_materials]
    if missing:
        from fedsim_app.errors import FedSimError

        raise FedSimError(f"label values {missing} have no material; add them to the mapping")
    out = {}
    for v in present:
        spec = class_materials[v]
        if isinstance(spec, str):
            out[v] = (spec, float(profile.iodine_mg_per_ml))
        else:
            name, iodine = spec
            out[v] = (str(name), float(iodine))
    return out


def mu_at_energy(labels, class_materials, profile: ScannerProfile, energy_keV=None):
    """μ volume (1/mm, float32) at ``energy_keV`` (default: the effective energy)."""
    energy = profile.effective_energy_keV if energy_keV is None else energy_keV
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=np.float32)
    for value, (name, iodine) in _materials(labels, class_materials, profile).items():
        out[labels == value] = mu_per_mm(name, energy, iodine_mg_per_ml=iodine)
    return out


def _gaussian_1d(sigma_px: float):
    import torch

    if sigma_px <= 1e-3:
        return None
    half = max(1, math.ceil(3 * sigma_px))
    x = torch.arange(-half, half + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma_px) ** 2)
    return k / k.sum()


def detector_blur(intensity, op: CTOperator, blur_mm: float):
    """Separable Gaussian (σ = ``blur_mm`` on the detector) along u and v of (..., V, U, Vd)."""
    import torch

    out = intensity
    for axis, pitch in ((-2, op.detector_pitch_mm[0]), (-1, op.detector_pitch_mm[1])):
        k = _gaussian_1d(blur_mm / pitch)
        if k is None:
            continue
        k = k.to(out)
        moved = out.movedim(axis, -1)
        shape = moved.shape
        flat = moved.reshape(-1, 1, shape[-1])
        pad = (k.numel() - 1) // 2
        flat = torch.nn.functional.pad(flat, (pad, pad), mode="replicate")
        flat = torch.nn.functional.conv1d(flat, k.view(1, 1, -1))
        out = flat.reshape(shape).movedim(-1, axis)
    return out


def render_physics(labels, class_materials, profile: ScannerProfile, *, spacing_mm,
                   noise=True, generator=None, n_views=None, beam_hardening=None,
                   return_noise_free=False, device=None, extra_mu=None):
    """Full physics render of a class volume ``labels`` (nz, ny, nx) → HU (torch, float32).

    ``extra_mu`` (nz, ny, nx, 1/mm at the effective energy) is added to the classes'
    materials (texture, contrast gradients); it is projected once and attenuates every
    energy alike, so beam hardening stays that of the class materials.
    With ``return_noise_free`` also returns the noise-free HU of the same acquisition
    (same projections), which measurement helpers use to isolate noise. ``device``: the
    torch device of the projections and the result (default: CUDA when present).
    """
    import torch

    labels = np.asarray(labels)
    mats = {v: m for v, m in _materials(labels, class_materials, profile).items()
            if m[0] != "air"}
    op = CTOperator.from_profile(profile, volume_shape=labels.shape, spacing_mm=spacing_mm,
                                 n_views=n_views, device=device)
    values = list(mats)
    i0 = photons_per_pixel(profile, op)
    bh = profile.beam_hardening if beam_hardening is None else beam_hardening
    if bh and values:
        # (M, nz, ny, nx) indicator maps -> path lengths (M, V, U, Vd) in mm, one batched
        # projection (diffct's cost is mostly per ray, so the batch is cheap).
        indicators = torch.from_numpy(np.stack([labels == v for v in values]).astype(np.float32))
        lengths = op.forward(indicators).double()
        energies, weights = profile.spectrum.arrays()
        mu = torch.as_tensor(np.stack([
            mu_per_mm(mats[v][0], energies, iodine_mg_per_ml=mats[v][1])
            for v in values]), device=lengths.device)  # (M, K)
        intensity = torch.zeros(lengths.shape[1:], dtype=torch.float64, device=lengths.device)
        for k in range(len(energies)):
            intensity += float(weights[k]) * torch.exp(-torch.tensordot(mu[:, k], lengths, 1))
    else:
        # Monochromatic: one projection of the μ map at the effective energy.
        mu_map = torch.from_numpy(mu_at_energy(labels, class_materials, profile))
        intensity = torch.exp(-op.forward(mu_map).double())
    if extra_mu is not None:
        delta = torch.from_numpy(np.asarray(extra_mu, dtype=np.float32))
        intensity = intensity * torch.exp(-op.forward(delta).double())
    expected = i0 * intensity
    outputs = []
    for noisy in ((noise, False) if return_noise_free else (noise,)):
        # Draw on the CPU so a CPU generator replays the same noise on any device.
        counts = (torch.poisson(expected.cpu(), generator=generator).to(expected.device)
                  if noisy else expected)
        counts = detector_blur(counts, op, profile.detector_blur_mm).clamp_min(0.5)
        p = -torch.log(counts / i0)
        if bh:
            p = water_precorrection(p, profile)
        outputs.append(mu_to_hu(op.fdk(p.float()), profile))
    return tuple(outputs) if return_noise_free else outputs[0]


def water_precorrection(p_poly, profile: ScannerProfile):
    """A scanner's water beam-hardening correction (linearisation).

    Maps each measured polychromatic line integral to the water path t that produces it,
    then to μ_w(E_eff)·t: water of any size reconstructs to μ_w(E_eff); denser materials
    (bone, iodine) keep their residual beam-hardening error, as on a real scanner.
    """
    import torch

    energies, weights = profile.spectrum.arrays()
    mu_w = mu_per_mm("water", energies)
    t = np.linspace(0.0, 1500.0, 3001)  # mm of water
    p_of_t = -np.log((weights[None, :] * np.exp(-np.outer(t, mu_w))).sum(axis=1))
    target = water_mu_per_mm(profile) * t
    flat = p_poly.detach().reshape(-1).cpu().numpy()
    corrected = np.interp(flat, p_of_t, target, right=None)
    slope = np.interp(flat, p_of_t, np.gradient(target, p_of_t))
    # Keep p differentiable: corrected = value + slope·(p − p.detach()).
    value = torch.from_numpy(corrected).to(p_poly).reshape(p_poly.shape)
    grad = torch.from_numpy(slope).to(p_poly).reshape(p_poly.shape)
    return value + grad * (p_poly - p_poly.detach())


# -- image-domain model -------------------------------------------------------------------
def _window(name: str, nf):
    """diffct's ramp windows on normalised frequency nf = f / f_Nyquist(detector)."""
    nf = np.clip(np.abs(nf), 0.0, 1.0)
    if name == "hann":
        return 0.5 * (1 + np.cos(np.pi * nf))
    if name == "shepp-logan":
        arg = np.pi * nf / 2
        return np.where(nf > 1e-8, np.sin(arg) / np.maximum(arg, 1e-8), 1.0)
    return np.ones_like(nf)


def _filter_kernel(op: CTOperator, blur_mm: float) -> np.ndarray:
    """diffct's windowed ramp (on a delta, after the detector blur), per unit line integral."""
    diffct = quiet_diffct()
    import torch

    n = 4 * op.detector_shape[0] + 1
    delta = torch.zeros(1, n, dtype=torch.float64)
    delta[0, n // 2] = 1.0
    k = _gaussian_1d(blur_mm / op.detector_pitch_mm[0])
    if k is not None:
        delta = torch.nn.functional.conv1d(delta[None], k.view(1, 1, -1),
                                           padding=(k.numel() - 1) // 2)[0]
    h = diffct.ramp_filter_1d(delta, dim=-1, sample_spacing=op.detector_pitch_mm[0],
                              pad_factor=2, window=op.window)
    return h[0].cpu().numpy()


def _interp_variance(kernel: np.ndarray) -> float:
    """Variance gain of a linearly interpolated, filtered white sequence (t ~ U[0, 1])."""
    return float((2 / 3) * (kernel**2).sum() + (1 / 3) * (kernel[:-1] * kernel[1:]).sum())


def noise_sigma_hu(profile: ScannerProfile, op: CTOperator, central_path: float) -> float:
    """FDK noise standard deviation (HU) at the isocentre for a central line integral.

    Var f = Σ_views c² · σ_p² · g_u · g_v with c = Δβ·sdd/(2π·sid) (diffct's FDK constants),
    σ_p² = e^p / I0 the log-intensity variance, g_u, g_v the variance gains of filtering,
    detector blur and bilinear interpolation along u and v.
    """
    i0 = photons_per_pixel(profile, op)
    var_p = math.exp(central_path) / i0
    weights = op.angular_weights.double().cpu().numpy()
    c2 = float(((weights * op.sdd_mm / (2 * math.pi * op.sid_mm)) ** 2).sum())
    g_u = _interp_variance(_filter_kernel(op, profile.detector_blur_mm))
    # Along v the voxel centres near the isocentre project onto detector-row centres
    # (the pitch is scaled to the voxel), so no interpolation averaging, only the blur.
    kv = _gaussian_1d(profile.detector_blur_mm / op.detector_pitch_mm[1])
    g_v = 1.0 if kv is None else float((kv.cpu().numpy() ** 2).sum())
    sigma_mu = math.sqrt(c2 * var_p * g_u * g_v)
    return abs(profile.hu_slope) * 1000.0 * sigma_mu / water_mu_per_mm(profile)


def transfer_functions(profile: ScannerProfile, op: CTOperator, shape, spacing_mm):
    """(MTF, noise amplitude) on the rfft grid of a (nz, ny, nx) volume.

    In-plane: ramp window × linear interpolation (sinc²) × Gaussian detector blur, with
    frequencies scaled to the isocentre; along z: interpolation × blur. The noise amplitude
    is √NPS with NPS ∝ |f_xy|·MTF_xy² · MTF_z² (FDK's ramp-shaped texture).
    """
    nz, ny, nx = shape
    sz, sy, sx = spacing_mm
    fz = np.fft.fftfreq(nz, sz)[:, None, None]
    fy = np.fft.fftfreq(ny, sy)[None, :, None]
    fx = np.fft.rfftfreq(nx, sx)[None, None, :]
    f_xy = np.sqrt(fx**2 + fy**2)
    mag = op.sdd_mm / op.sid_mm
    du = op.detector_pitch_mm[0] / mag
    blur_u = profile.detector_blur_mm / mag
    nyq = 1.0 / (2 * du)
    window = _window(op.window, f_xy / nyq)
    blur = np.exp(-2 * (np.pi * blur_u * f_xy) ** 2)
    inside = f_xy <= nyq
    mtf_xy = np.where(inside, window * np.sinc(f_xy * du) ** 2 * blur, 0.0)
    mtf_z = np.exp(-2 * (np.pi * blur_u * fz) ** 2)  # rows on voxel centres: blur only
    mtf = mtf_xy * mtf_z
    # Noise is interpolated once (not twice as the signal's edge is) and aliases back
    # on the voxel grid; one sinc matches the measured FDK NPS shape better.
    nps_amp = np.sqrt(f_xy) * np.where(inside, window * np.sinc(f_xy * du) * blur, 0.0) * mtf_z
    return mtf, nps_amp


def central_path_length(mu: np.ndarray, spacing_mm, n_angles: int = 36,
                        n_offsets: int = 9) -> float:
    """log ⟨e^p⟩ over in-plane rays crossing the central region of the middle slice.

    FDK's variance at a point is the view average of e^p / I0 over the rays through it,
    dominated by the most attenuating directions, so the average is of e^p, not of p.
    Rays are offset across the central half of the field, the region noise is read from.
    """
    from scipy.ndimage import map_coordinates

    nz, ny, nx = mu.shape
    _, sy, sx = spacing_mm
    step = 0.5 * min(sx, sy)
    half = 0.5 * math.hypot(nx * sx, ny * sy)
    t = np.arange(-half, half, step)
    theta = np.arange(n_angles) * (np.pi / n_angles)
    offsets = np.linspace(-0.25, 0.25, n_offsets) * min(nx * sx, ny * sy)
    c, s_ = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    o = offsets[None, :, None]
    x = c * t - s_ * o  # (angles, offsets, samples)
    y = s_ * t + c * o
    coords = np.stack([y / sy + (ny - 1) / 2, x / sx + (nx - 1) / 2])
    sl = mu[nz // 2].astype(np.float64)
    p = map_coordinates(sl, coords.reshape(2, -1), order=1, mode="constant").reshape(x.shape)
    return float(np.log(np.exp(p.sum(axis=-1) * step).mean()))


def render_fast(mu: np.ndarray, profile: ScannerProfile, *, spacing_mm, noise=True,
                generator=None, n_views=None):
    """Image-domain render of a μ volume (1/mm at the effective energy) → HU (torch)."""
    import torch

    mu = np.asarray(mu, dtype=np.float64)
    sp = tuple(spacing_mm) if isinstance(spacing_mm, tuple | list) else (float(spacing_mm),) * 3
    op = CTOperator.from_profile(profile, volume_shape=mu.shape, spacing_mm=sp, n_views=n_views,
                                 device="cpu")
    mtf, nps_amp = transfer_functions(profile, op, mu.shape, sp)
    blurred = np.fft.irfftn(np.fft.rfftn(mu) * mtf, s=mu.shape, axes=(0, 1, 2))
    hu = mu_to_hu(torch.from_numpy(blurred).float(), profile)
    if noise:
        white = torch.randn(mu.shape, generator=generator, dtype=torch.float64).numpy()
        field = np.fft.irfftn(np.fft.rfftn(white) * nps_amp, s=mu.shape, axes=(0, 1, 2))
        field /= max(field.std(), 1e-12)
        sigma = noise_sigma_hu(profile, op, central_path_length(mu, sp))
        hu = hu + torch.from_numpy(field * sigma).float()
    return hu


def render(labels, class_materials, profile: ScannerProfile, *, spacing_mm, fidelity="fast",
           noise=True, generator=None, n_views=None):
    """Render a tissue-class volume with the profile's scanner → HU (torch, float32).

    Parameters
    ----------
    labels : (nz, ny, nx) int array on a centred grid.
    class_materials : mapping label value → material name (`materials.MATERIAL_NAMES`),
        or → ``(name, iodine_mg_per_ml)`` to give a class its own contrast concentration.
    fidelity : ``"fast"`` (image domain, ~1 s at 128³) or ``"physics"`` (diffct).
    """
    if fidelity == "physics":
        return render_physics(labels, class_materials, profile, spacing_mm=spacing_mm,
                              noise=noise, generator=generator, n_views=n_views)
    if fidelity != "fast":
        raise ValueError(f"fidelity must be one of {FIDELITIES}")
    mu = mu_at_energy(np.asarray(labels), class_materials, profile)
    return render_fast(mu, profile, spacing_mm=spacing_mm, noise=noise, generator=generator,
                       n_views=n_views)


def render_hu_fast(hu_ideal: np.ndarray, profile: ScannerProfile, *, spacing_mm, rng,
                   motion_weight=None, motion_mm: float = 0.0, n_views=None) -> np.ndarray:
    """The world's image-domain scanner: ideal HU (nz, ny, nx) → reconstructed HU, float32.

    As :func:`render_fast`, in single precision, plus: cardiac motion blur (a Gaussian of
    ``motion_mm`` blended in by ``motion_weight`` in [0, 1], e.g. a smoothed heart mask);
    the voxel aperture (a box over each voxel: partial volume of the scene's sub-voxel
    mixtures); noise drawn straight on the rfft grid with the FDK noise power spectrum's
    shape (ramp × window² × interpolation × blur) and the standard deviation FDK theory
    predicts for this dose and patient; ``rng`` (numpy Generator) draws it.
    """
    import scipy.fft as sfft

    from fedsim_app.anatomy.fields import gaussian_filter_fft

    sp = tuple(float(v) for v in spacing_mm)
    shape = hu_ideal.shape
    mu_w = water_mu_per_mm(profile)
    mu = (mu_w * (1.0 + np.asarray(hu_ideal, np.float32) / 1000.0)).astype(np.float32)
    spec = sfft.rfftn(mu, workers=2)
    op = CTOperator.from_profile(profile, volume_shape=shape, spacing_mm=sp, n_views=n_views,
                                 device="cpu")
    mtf, nps_amp = transfer_functions(profile, op, shape, sp)
    nz, ny, nx = shape
    fz = np.fft.fftfreq(nz, sp[0])[:, None, None]
    fy = np.fft.fftfreq(ny, sp[1])[None, :, None]
    fx = np.fft.rfftfreq(nx, sp[2])[None, None, :]
    aperture = np.sinc(fz * sp[0]) * np.sinc(fy * sp[1]) * np.sinc(fx * sp[2])
    spec = spec * (mtf * aperture).astype(np.float32)
    blurred = sfft.irfftn(spec, s=shape, workers=2)
    if motion_weight is not None and motion_mm > 0:
        # blur after the MTF (both linear; the weight varies slowly): one transform fewer
        moved = sfft.irfftn(gaussian_filter_fft(spec, shape, sp, motion_mm), s=shape, workers=2)
        blurred = blurred + np.asarray(motion_weight, np.float32) * (moved - blurred)
    half = (nz, ny, nx // 2 + 1)
    white = (rng.standard_normal(half, dtype=np.float32)
             + 1j * rng.standard_normal(half, dtype=np.float32))
    field = sfft.irfftn(white * nps_amp.astype(np.float32), s=shape, workers=2)
    field /= max(float(field.std()), 1e-12)
    sigma = noise_sigma_hu(profile, op, central_path_length(mu, sp))
    hu = profile.hu_slope * 1000.0 * (blurred - mu_w) / mu_w + profile.hu_intercept
    return (hu + sigma * field).astype(np.float32)
