"""Beam hardening and its streaks for the `fast` fidelity, from the image alone.

After a scanner's water correction (:func:`fedsim_app.ctsim.render.water_precorrection`)
the line integral of a ray through dense material (bone, iodinated blood) still falls
short of its monochromatic value, and the shortfall grows faster than linearly with the
dense path: ``e ≈ −β q²``, with ``q`` the ray's line integral of the dense material's μ
in excess of water. Reconstructed, that quadratic deficit is a darkening (cupping) inside
thick dense objects and dark bands along the rays that cross two dense objects (the
cross term ``−2β q₁ q₂``), i.e. between contrast-filled vessels, the spine and the
sternum. This is the forward model behind Joseph and Spital's post-reconstruction
correction (J Comput Assist Tomogr 1978, 2:100), run the other way.

:func:`hardening_hu` applies it to an ideal HU volume: it keeps the dense part of the
image, takes its parallel-beam projections slice by slice on a coarse in-plane grid
(``GRID_PX``), squares them, filters and back-projects the error (ramp filter with a Hann
window), and returns the error in HU at full resolution. :func:`hardening_beta` derives β
from the scanner profile's spectrum, the water correction and the patient size the
profile is calibrated for, so the strength follows kVp and filtration as the `physics`
fidelity's does. The linear part of the deficit (dense materials reading a few percent low
everywhere) is left out: the world's CT numbers are drawn as the image shows them.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from fedsim_app.ctsim.scanner import ScannerProfile

#: HU from which a voxel counts as dense (ramped in over ``DENSE_RAMP_HU``): bone, marrow,
#: opacified blood; soft tissue, fat and lung add nothing
DENSE_FROM_HU = 100.0
DENSE_RAMP_HU = 100.0
GRID_PX = 32  # in-plane size of the coarse grid the error is computed on
SLAB = 4  # slices averaged into one coarse slice (the error varies slowly in z)


def hardening_beta(profile: ScannerProfile) -> float:
    """β of ``e ≈ −β q²`` for the profile's spectrum after its water correction.

    Rays through ``reference_water_mm`` of water in which 0-30 mm are replaced by bone,
    or by blood at the protocol's iodine concentration; the water-corrected line integral
    minus the monochromatic one (at the effective energy) is fitted with ``a q + b q²``
    per material, and β is −b averaged over the two materials.
    """
    from fedsim_app.ctsim.materials import mu_per_mm
    from fedsim_app.ctsim.simulate import water_mu_per_mm

    energies, weights = profile.spectrum.arrays()
    weights = np.asarray(weights, np.float64) / np.sum(weights)
    mu_w = mu_per_mm("water", energies)
    mu_w_eff = water_mu_per_mm(profile)
    t = np.linspace(0.0, 1500.0, 3001)  # mm of water: the scanner's linearisation table
    p_of_t = -np.log((weights[None, :] * np.exp(-np.outer(t, mu_w))).sum(axis=1))
    water = float(profile.reference_water_mm)
    length = np.linspace(0.0, 30.0, 31)
    betas = []
    for name, iodine in (("bone", 0.0), ("blood_iodine", float(profile.iodine_mg_per_ml))):
        mu_d = mu_per_mm(name, energies, iodine_mg_per_ml=iodine)
        p_poly = -np.log((weights[None, :] * np.exp(
            -(np.outer(water - length, mu_w) + np.outer(length, mu_d)))).sum(axis=1))
        corrected = np.interp(p_poly, p_of_t, mu_w_eff * t)
        mu_d_eff = float(mu_per_mm(name, profile.effective_energy_keV, iodine_mg_per_ml=iodine))
        mono = mu_w_eff * (water - length) + mu_d_eff * length
        q = (mu_d_eff - mu_w_eff) * length
        (_, b), *_ = np.linalg.lstsq(np.stack([q, q**2], axis=1), corrected - mono, rcond=None)
        betas.append(-float(b))
    return float(np.mean(betas))


@functools.lru_cache(maxsize=8)
def _rotation_grids(n: int, n_angles: int):
    """(A, n, n, 2) sampling grids of the projection (rotate, then sum over rows) and
    (A, n, n) detector coordinates u = x cos θ + y sin θ of every pixel (normalised).

    Cached: a cohort's cases share their grid size, so the grids are built once (the
    callers only read them).
    """
    import torch

    theta = torch.arange(n_angles, dtype=torch.float64) * (math.pi / n_angles)
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    axis = (torch.arange(n, dtype=torch.float64) + 0.5) * (2.0 / n) - 1.0
    v, u = torch.meshgrid(axis, axis, indexing="ij")  # rows v, columns u
    # projection: output (v, u) samples the image at (x, y) = (c u − s v, s u + c v)
    grid = torch.stack([c * u - s * v, s * u + c * v], dim=-1).float()
    detector = (c * u + s * v).float()  # back-projection: pixel (y=v, x=u) → u'
    return grid, detector


def project(image: np.ndarray, pixel_mm: float, n_angles: int) -> np.ndarray:
    """Parallel-beam line integrals of (Z, n, n) slices → (A, Z, n), over A angles in [0, π).

    The slices must be padded so that no rotation cuts what they hold (zeros outside).
    """
    import torch

    z, n, _ = image.shape
    grid, _ = _rotation_grids(n, n_angles)
    src = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]  # (1, Z, n, n)
    rotated = torch.nn.functional.grid_sample(
        src.expand(n_angles, z, n, n), grid, mode="bilinear", padding_mode="zeros",
        align_corners=False).numpy()  # (A, Z, v, u)
    return rotated.sum(axis=2, dtype=np.float64) * pixel_mm


def back_project_filtered(sinogram: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Filtered back-projection of (A, Z, n) parallel projections → (Z, n, n), per mm."""
    import scipy.fft as sfft
    import torch

    n_angles, _, n = sinogram.shape
    _, detector = _rotation_grids(n, n_angles)
    # ramp filter along u (zero-padded to 2n, Hann-windowed against ringing)
    freq = np.fft.rfftfreq(2 * n, pixel_mm)
    ramp = freq * 0.5 * (1.0 + np.cos(np.pi * freq / freq[-1]))
    filtered = sfft.irfft(sfft.rfft(sinogram, n=2 * n, axis=-1) * ramp, n=2 * n,
                          axis=-1)[..., :n]
    # each pixel reads its detector coordinate in every view
    rows = torch.from_numpy(filtered.astype(np.float32))[:, :, None, :]  # (A, Z, 1, n)
    where = torch.stack([detector, torch.zeros_like(detector)], dim=-1)  # (A, n, n, 2)
    smeared = torch.nn.functional.grid_sample(rows, where, mode="bilinear",
                                              padding_mode="zeros", align_corners=False)
    return smeared.numpy().sum(axis=0, dtype=np.float64) * (math.pi / n_angles)


def hardening_hu(hu_ideal: np.ndarray, profile: ScannerProfile, spacing_mm, *,
                 scale: float = 1.0, beta: float | None = None) -> np.ndarray:
    """Beam-hardening error image (HU, float32, same shape) of an ideal HU volume.

    Parameters
    ----------
    hu_ideal : (nz, ny, nx) HU on an isotropic-in-plane grid (axial slices along axis 0)
    spacing_mm : (sz, sy, sx)
    scale : the case's strength relative to an uncorrected scanner (1: the `physics`
        fidelity's water correction only; less: a vendor's bone correction removed part)
    beta : override :func:`hardening_beta` (tests)

    Returns
    -------
    (nz, ny, nx) float32, ≤ 0 inside dense objects and along the rays joining them;
    exactly zero where the volume has no voxel above :data:`DENSE_FROM_HU`.
    """
    import torch

    from fedsim_app.ctsim.simulate import water_mu_per_mm

    hu = np.asarray(hu_ideal, np.float32)
    nz, ny, nx = hu.shape
    weight = np.clip((hu - DENSE_FROM_HU) / DENSE_RAMP_HU, 0.0, 1.0)
    if scale == 0.0 or not weight.any():
        return np.zeros(hu.shape, np.float32)
    mu_w = water_mu_per_mm(profile)
    dense = weight * hu * (mu_w / 1000.0)  # (nz, ny, nx) excess μ over water, 1/mm
    # coarse grid: SLAB slices and (ny / GRID_PX) pixels averaged; square in-plane
    n = min(GRID_PX, ny, nx)
    zs = max(1, nz // SLAB)
    coarse = torch.nn.functional.interpolate(
        torch.from_numpy(dense)[None, None], size=(zs, n, n), mode="area")[0, 0].numpy()
    pixel_mm = float(spacing_mm[1]) * ny / n
    pad = int(math.ceil(0.21 * n))  # the rotated square's corners stay inside
    padded = np.pad(coarse, ((0, 0), (pad, pad), (pad, pad)))
    n_angles = int(math.ceil(math.pi / 2 * padded.shape[1]))
    b = hardening_beta(profile) if beta is None else beta
    squares = project(padded, pixel_mm, n_angles) ** 2  # (A, Z, n): q² per ray
    err_mu = -b * scale * back_project_filtered(squares, pixel_mm)[:, pad:-pad, pad:-pad]
    err = torch.nn.functional.interpolate(
        torch.from_numpy(err_mu.astype(np.float32))[None, None], size=(nz, ny, nx),
        mode="trilinear", align_corners=False)[0, 0].numpy()
    return (abs(profile.hu_slope) * 1000.0 / mu_w * err).astype(np.float32)
