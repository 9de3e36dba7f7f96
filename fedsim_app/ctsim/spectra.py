"""Tungsten-anode X-ray spectra for 80–140 kVp.

Model: Kramers' law for the bremsstrahlung photon fluence per energy interval,
N(E) ∝ (kVp − E) / E, attenuated by the tube's inherent filtration (given as mm Al) and any
added Al/Cu filtration through xraydb attenuation coefficients. Why Kramers rather than a
tabulated TASMIP spectrum: it needs no shipped table, is differentiable in its parameters,
and after ≥ 2.5 mm Al its half-value layers are within ~10% of TASMIP for 80–140 kVp, which
is below the site-to-site variation we model. It omits the tungsten K lines (58–69 keV),
a few percent of the fluence at 120 kVp; say so when quoting absolute HU.

Detected weights assume an energy-integrating detector: signal ∝ N(E) · E.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class Spectrum:
    """A discrete spectrum: bin centres (keV) and detected-signal weights summing to 1."""

    energies_keV: tuple[float, ...]
    weights: tuple[float, ...]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.energies_keV), np.asarray(self.weights)

    @property
    def mean_energy_keV(self) -> float:
        e, w = self.arrays()
        return float((e * w).sum())


def _filter_transmission(energies_keV: np.ndarray, element: str, thickness_mm: float,
                         density: float) -> np.ndarray:
    import xraydb

    if thickness_mm <= 0:
        return np.ones_like(energies_keV)
    mu_per_cm = density * xraydb.mu_elam(element, energies_keV * 1000.0)
    return np.exp(-mu_per_cm * thickness_mm / 10.0)


@cache
def kramers_spectrum(kvp: float, *, al_mm: float = 2.5, cu_mm: float = 0.0,
                     bin_keV: float = 2.0, min_keV: float = 15.0) -> Spectrum:
    """Filtered Kramers spectrum, detected (energy-weighted) and normalised.

    Examples
    --------
    >>> s = kramers_spectrum(120.0, al_mm=6.0)
    >>> 55 < s.mean_energy_keV < 75
    True
    """
    edges = np.arange(min_keV, kvp + 1e-9, bin_keV)
    centres = 0.5 * (edges[:-1] + edges[1:])
    fluence = np.clip(kvp - centres, 0.0, None) / centres
    fluence *= _filter_transmission(centres, "Al", al_mm, 2.699)
    fluence *= _filter_transmission(centres, "Cu", cu_mm, 8.96)
    detected = fluence * centres
    keep = detected > 1e-6 * detected.max()
    weights = detected[keep] / detected[keep].sum()
    return Spectrum(tuple(centres[keep].tolist()), tuple(weights.tolist()))


def effective_energy_keV(spectrum: Spectrum, water_mm: float = 200.0) -> float:
    """Energy whose monochromatic water μ equals the spectrum's measured water μ.

    The measured μ is −ln(T)/t for a water path ``t`` = ``water_mm`` (the size of the
    patient a site scans), so it includes the beam hardening of that path.
    """
    from fedsim_app.ctsim.materials import mu_per_mm

    e, w = spectrum.arrays()
    mu_w = mu_per_mm("water", e)
    measured = -np.log((w * np.exp(-mu_w * water_mm)).sum()) / water_mm
    grid = np.arange(20.0, e.max(), 0.1)
    mu_grid = mu_per_mm("water", grid)  # decreasing with energy in this range
    return float(np.interp(-measured, -mu_grid, grid))
