"""Energy-dependent linear attenuation of body tissues, from xraydb.

Compositions (mass fractions) and densities are those of ICRU Report 44 (1989), "Tissue
Substitutes in Radiation Dosimetry and Measurement", Table 4.1, as reproduced in the NIST
"Composition of Materials Used in Dosimetry" tables; inflated-lung density follows ICRU
Report 46 (1992). Elemental mass attenuation (cm^2/g, total with coherent scattering) comes
from ``xraydb.mu_elam`` (Elam, Ravel & Sieber 2002 tables).

μ(E) = ρ Σ_i w_i (μ/ρ)_i(E)  [1/cm]; FedSim uses ``mu_per_mm`` = μ / 10.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np

from fedsim_app.errors import FedSimError

# name -> (density g/cm^3, {element: mass fraction})
COMPOSITIONS: dict[str, tuple[float, dict[str, float]]] = {
    "water": (1.000, {"H": 0.111894, "O": 0.888106}),
    # Dry air near sea level (NIST).
    "air": (0.001205, {"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827}),
    # ICRU-44 lung tissue composition at ICRU-46 inflated density.
    "lung": (0.26, {"H": 0.103, "C": 0.105, "N": 0.031, "O": 0.749, "Na": 0.002, "P": 0.002,
                    "S": 0.003, "Cl": 0.003, "K": 0.002}),
    "fat": (0.95, {"H": 0.114, "C": 0.598, "N": 0.007, "O": 0.278, "Na": 0.001, "S": 0.001,
                   "Cl": 0.001}),
    "muscle": (1.05, {"H": 0.102, "C": 0.143, "N": 0.034, "O": 0.710, "Na": 0.001, "P": 0.002,
                      "S": 0.003, "Cl": 0.001, "K": 0.004}),
    "myocardium": (1.05, {"H": 0.104, "C": 0.139, "N": 0.029, "O": 0.718, "Na": 0.001,
                          "P": 0.002, "S": 0.002, "Cl": 0.002, "K": 0.003}),
    "blood": (1.06, {"H": 0.102, "C": 0.110, "N": 0.033, "O": 0.745, "Na": 0.001, "P": 0.001,
                     "S": 0.002, "Cl": 0.003, "K": 0.002, "Fe": 0.001}),
    "bone": (1.92, {"H": 0.034, "C": 0.155, "N": 0.042, "O": 0.435, "Na": 0.001, "Mg": 0.002,
                    "P": 0.103, "S": 0.003, "Ca": 0.225}),
    "liver": (1.06, {"H": 0.102, "C": 0.139, "N": 0.030, "O": 0.716, "Na": 0.002, "P": 0.003,
                     "S": 0.003, "Cl": 0.002, "K": 0.003}),
    "soft_tissue": (1.06, {"H": 0.102, "C": 0.143, "N": 0.034, "O": 0.708, "Na": 0.002,
                           "P": 0.003, "S": 0.003, "Cl": 0.002, "K": 0.003}),
}

#: Tissue classes a material table covers; ``blood_iodine`` is blood with contrast.
MATERIAL_NAMES: tuple[str, ...] = (
    "air", "lung", "fat", "muscle", "blood", "blood_iodine", "myocardium", "bone", "liver",
    "soft_tissue", "water",
)

#: How `fedsim_app.anatomy.Tissue` names (lower-cased) and heart structures map to materials.
TISSUE_MATERIAL: dict[str, str] = {
    "air": "air", "fat": "fat", "soft_tissue": "soft_tissue", "lung": "lung", "spine": "bone",
    "ribs": "bone", "sternum": "bone", "liver": "liver", "pericardial_fat": "fat",
    "heart": "myocardium", "lv_blood_pool": "blood_iodine", "lv_myocardium": "myocardium",
    "rv": "blood_iodine", "la": "blood_iodine", "ra": "blood_iodine", "aorta": "blood_iodine",
    "pulmonary_artery": "blood_iodine",
}


@cache
def _mass_attenuation(element: str, energies_keV: tuple[float, ...]) -> np.ndarray:
    import xraydb

    return np.asarray(xraydb.mu_elam(element, np.asarray(energies_keV) * 1000.0), dtype=float)


def composition(name: str, iodine_mg_per_ml: float = 0.0) -> tuple[float, dict[str, float]]:
    """Density (g/cm^3) and mass fractions of a material.

    ``blood_iodine`` mixes blood with iodine by mass: 1 mL holds 1.06 g of blood plus
    ``iodine_mg_per_ml`` mg of iodine (the carrier's volume is neglected).
    """
    if name == "blood_iodine":
        rho_blood, blood = COMPOSITIONS["blood"]
        iodine_g = max(float(iodine_mg_per_ml), 0.0) / 1000.0
        rho = rho_blood + iodine_g
        w_iodine = iodine_g / rho
        fractions = {el: w * (1.0 - w_iodine) for el, w in blood.items()}
        fractions["I"] = w_iodine
        return rho, fractions
    if name not in COMPOSITIONS:
        raise FedSimError(
            f"unknown material {name!r}; known: {', '.join(MATERIAL_NAMES)}"
        )
    return COMPOSITIONS[name]


def mu_per_mm(name: str, energy_keV, *, iodine_mg_per_ml: float = 0.0) -> np.ndarray:
    """Linear attenuation (1/mm) of a material at one or more photon energies.

    Examples
    --------
    >>> round(float(mu_per_mm("water", 70.0)), 4)
    0.0193
    """
    energies = np.atleast_1d(np.asarray(energy_keV, dtype=float))
    rho, fractions = composition(name, iodine_mg_per_ml)
    total = np.zeros_like(energies)
    for element, w in fractions.items():
        total += w * _mass_attenuation(element, tuple(energies.tolist()))
    mu = rho * total / 10.0  # 1/cm -> 1/mm
    return mu if np.ndim(energy_keV) else mu[0]


def mu_polychromatic_per_mm(name: str, energies_keV, weights, *,
                            iodine_mg_per_ml: float = 0.0) -> float:
    """Spectrum-weighted mean μ (1/mm): Σ w_k μ(E_k) / Σ w_k (thin-object limit)."""
    weights = np.asarray(weights, dtype=float)
    mu = mu_per_mm(name, np.asarray(energies_keV, dtype=float), iodine_mg_per_ml=iodine_mg_per_ml)
    return float((weights * mu).sum() / weights.sum())


def material_table(energy_keV: float, *, iodine_mg_per_ml: float = 0.0,
                   names: tuple[str, ...] = MATERIAL_NAMES) -> dict[str, float]:
    """μ (1/mm) of every tissue class at one (effective) energy."""
    return {n: float(mu_per_mm(n, energy_keV, iodine_mg_per_ml=iodine_mg_per_ml)) for n in names}


def label_volume_to_mu(labels: np.ndarray, class_materials: Mapping[int, str],
                       energy_keV: float, *, iodine_mg_per_ml: float = 0.0) -> np.ndarray:
    """Map an integer class volume to μ (1/mm) at ``energy_keV``.

    ``class_materials`` maps each label value to a material name (see ``TISSUE_MATERIAL``
    for the anatomy's tissue names). Values without an entry raise FedSimError.
    """
    labels = np.asarray(labels)
    present = np.unique(labels)
    missing = [int(v) for v in present if int(v) not in class_materials]
    if missing:
        raise FedSimError(f"label values {missing} have no material; add them to the mapping")
    lut = np.zeros(int(present.max()) + 1, dtype=np.float32)
    for value, name in class_materials.items():
        if 0 <= int(value) < lut.size:
            lut[int(value)] = mu_per_mm(name, energy_keV, iodine_mg_per_ml=iodine_mg_per_ml)
    return lut[labels]


def hu_of(name: str, energy_keV: float, *, iodine_mg_per_ml: float = 0.0) -> float:
    """Ideal CT number of a material at a monochromatic energy."""
    mu_w = float(mu_per_mm("water", energy_keV))
    mu = float(mu_per_mm(name, energy_keV, iodine_mg_per_ml=iodine_mg_per_ml))
    return 1000.0 * (mu - mu_w) / mu_w


def class_materials(names_by_value: Mapping[int, str]) -> dict[int, str]:
    """Material of each class value, from class names (case-insensitive, `TISSUE_MATERIAL`).

    Examples
    --------
    >>> class_materials({0: "AIR", 4: "SPINE", 9: "lv_blood_pool"})
    {0: 'air', 4: 'bone', 9: 'blood_iodine'}

    With the anatomy's torso classes: ``class_materials({int(t): t.name for t in Tissue})``.
    """
    out = {}
    for value, name in names_by_value.items():
        key = str(name).lower()
        if key in TISSUE_MATERIAL:
            out[int(value)] = TISSUE_MATERIAL[key]
        elif key in MATERIAL_NAMES:
            out[int(value)] = key
        else:
            raise FedSimError(f"class {name!r} has no material; known: {sorted(TISSUE_MATERIAL)}")
    return out
