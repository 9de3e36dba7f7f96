"""Image-quality measurements: noise power spectrum, MTF from an edge, HU per tissue."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def noise_power_spectrum(noise, spacing_mm, *, roi=None, n_bins=None):
    """Radial in-plane NPS of a noise-only volume (or a uniform region of an image).

    Parameters
    ----------
    noise : (nz, ny, nx) array; each axial slice of the ROI is one realisation.
    spacing_mm : (sz, sy, sx)
    roi : tuple of slices selecting a uniform region, optional.

    Returns
    -------
    freqs : (B,) cycles/mm bin centres, nps : (B,) HU²·mm², std : float (HU)
    """
    v = np.asarray(noise, dtype=np.float64)
    if roi is not None:
        v = v[roi]
    _, sy, sx = spacing_mm
    v = v - v.mean(axis=(1, 2), keepdims=True)
    ny, nx = v.shape[1:]
    spectra = np.abs(np.fft.fft2(v)) ** 2 * (sx * sy) / (nx * ny)
    nps2d = spectra.mean(axis=0)
    fy = np.fft.fftfreq(ny, sy)[:, None]
    fx = np.fft.fftfreq(nx, sx)[None, :]
    fr = np.sqrt(fx**2 + fy**2)
    f_max = 0.5 / max(sx, sy)
    n_bins = n_bins or min(nx, ny) // 2
    edges = np.linspace(0, f_max, n_bins + 1)
    idx = np.digitize(fr.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < n_bins)
    sums = np.bincount(idx[ok], nps2d.ravel()[ok], n_bins)
    counts = np.maximum(np.bincount(idx[ok], minlength=n_bins), 1)
    return 0.5 * (edges[:-1] + edges[1:]), sums / counts, float(v.std())


def nps_mean_frequency(freqs, nps) -> float:
    """First moment of the NPS (cycles/mm): a one-number summary of noise texture."""
    return float((freqs * nps).sum() / max(nps.sum(), 1e-30))


def mtf_from_disk_edge(image, spacing_mm, center_xy_mm, radius_mm, *, z_slices=None,
                       bin_mm=None, half_width_mm=None):
    """MTF from the circular edge of a uniform disk/cylinder (oversampled radial ESF).

    Voxels are binned by distance from the disk edge (``bin_mm``, default spacing/4); the
    edge-spread function is differentiated to the line-spread function, whose Fourier
    magnitude (normalised at 0) is the MTF.

    Returns
    -------
    freqs : cycles/mm, mtf : array, mtf50 : float (cycles/mm)
    """
    img = np.asarray(image, dtype=np.float64)
    nz, ny, nx = img.shape
    sz, sy, sx = spacing_mm
    z_slices = z_slices if z_slices is not None else slice(None)
    y = (np.arange(ny) - (ny - 1) / 2) * sy - center_xy_mm[1]
    x = (np.arange(nx) - (nx - 1) / 2) * sx - center_xy_mm[0]
    r = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2) - radius_mm  # signed distance (ny, nx)
    bin_mm = bin_mm or sx / 4
    half = half_width_mm or min(radius_mm * 0.8, 6 * sx)
    sel = np.abs(r) <= half
    values = img[z_slices][:, sel].mean(axis=0)
    dist = r[sel]
    edges = np.arange(-half, half + bin_mm, bin_mm)
    idx = np.digitize(dist, edges) - 1
    n_b = len(edges) - 1
    counts = np.bincount(idx, minlength=n_b)[:n_b]
    sums = np.bincount(idx, values, minlength=n_b)[:n_b]
    centres = 0.5 * (edges[:-1] + edges[1:])
    good = counts > 0
    esf = np.interp(centres, centres[good], sums[good] / counts[good])
    lsf = np.gradient(esf, bin_mm)
    lsf = lsf * np.hanning(lsf.size)
    spec = np.abs(np.fft.rfft(lsf))
    mtf = spec / max(spec[0], 1e-30)
    freqs = np.fft.rfftfreq(lsf.size, bin_mm)
    below = np.nonzero(mtf < 0.5)[0]
    if below.size == 0:
        mtf50 = float(freqs[-1])
    else:
        i = int(below[0])
        f0, f1, m0, m1 = freqs[i - 1], freqs[i], mtf[i - 1], mtf[i]
        mtf50 = float(f0 + (0.5 - m0) * (f1 - f0) / (m1 - m0))
    return freqs, mtf, mtf50


def mean_hu_per_tissue(hu, labels, names: Mapping[int, str], *, erode: int = 1):
    """Mean HU inside each class, after eroding its mask by ``erode`` voxels (edge blur).

    Returns ``{name: mean}`` for classes with voxels left after erosion.
    """
    from scipy.ndimage import binary_erosion

    hu = np.asarray(hu)
    labels = np.asarray(labels)
    out = {}
    for value, name in names.items():
        mask = labels == value
        if erode:
            mask = binary_erosion(mask, iterations=erode)
        if mask.any():
            out[name] = float(hu[mask].mean())
    return out
