"""Smooth correlated random fields for tissue texture (float32, single-precision FFTs).

A field is white Gaussian noise drawn directly on the rfft grid and shaped by a Gaussian
power spectrum of correlation length ``corr_mm``, then normalised to unit standard
deviation: tissue texture is ``amplitude × field`` with a tissue's own amplitude and
scale. Drawing in the Fourier domain saves the forward transform; scipy's pocketfft in
float32 is deterministic, so a seed replays the same field bit for bit.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft


def _freqs(shape, spacing_mm):
    nz, ny, nx = shape
    sz, sy, sx = spacing_mm
    fz = np.fft.fftfreq(nz, sz).astype(np.float32)[:, None, None]
    fy = np.fft.fftfreq(ny, sy).astype(np.float32)[None, :, None]
    fx = np.fft.rfftfreq(nx, sx).astype(np.float32)[None, None, :]
    return fz, fy, fx


def gaussian_filter_fft(spectrum: np.ndarray, shape, spacing_mm, sigma_mm) -> np.ndarray:
    """Multiply an rfft spectrum by a Gaussian of ``sigma_mm`` (scalar or (sz, sy, sx))."""
    fz, fy, fx = _freqs(shape, spacing_mm)
    s = np.broadcast_to(np.asarray(sigma_mm, dtype=np.float32), (3,))
    g = np.exp(-2 * np.pi**2 * ((s[0] * fz) ** 2 + (s[1] * fy) ** 2 + (s[2] * fx) ** 2))
    return spectrum * g


def smooth(volume: np.ndarray, spacing_mm, sigma_mm) -> np.ndarray:
    """Gaussian blur (σ in mm) of a volume through the FFT (periodic edges), float32."""
    v = np.asarray(volume, dtype=np.float32)
    spec = sfft.rfftn(v, workers=2)
    out = sfft.irfftn(gaussian_filter_fft(spec, v.shape, spacing_mm, sigma_mm), s=v.shape,
                      workers=2)
    return out.astype(np.float32, copy=False)


def random_field(rng: np.random.Generator, shape, spacing_mm, corr_mm) -> np.ndarray:
    """Gaussian random field, zero mean and unit std, correlation length ``corr_mm``.

    ``corr_mm`` is the σ of the Gaussian smoothing kernel (scalar, or (sz, sy, sx) for an
    anisotropic texture such as muscle fibres).
    """
    nz, ny, nx = shape
    half = (nz, ny, nx // 2 + 1)
    spec = (rng.standard_normal(half, dtype=np.float32)
            + 1j * rng.standard_normal(half, dtype=np.float32)).astype(np.complex64)
    spec = gaussian_filter_fft(spec, shape, spacing_mm, corr_mm)
    field = sfft.irfftn(spec, s=shape, workers=2).astype(np.float32, copy=False)
    field -= field.mean()
    field /= max(float(field.std()), 1e-12)
    return field
