"""Physics CT simulation: materials, scanner profiles, diffct operator, coarse and full renders.

Public API (heavy libraries — torch, diffct, xraydb — load on first use)::

    load_scanner, list_scanners, ScannerProfile          scanner profiles (TOML)
    mu_per_mm, material_table, MATERIAL_NAMES, TISSUE_MATERIAL, class_materials,
    label_volume_to_mu
    kramers_spectrum, effective_energy_keV                 tube spectra
    CTOperator                                             projector / adjoint / FDK (diffct)
    simulate, mu_to_hu, hu_to_mu                           acquisition pipeline
    CoarseCT                                               16³ μ → 16³ HU for the model
    render, render_fast, render_physics                    full-resolution renders
    noise_power_spectrum, mtf_from_disk_edge, mean_hu_per_tissue
"""

from fedsim_app.ctsim.coarse import CoarseCT
from fedsim_app.ctsim.materials import (
    MATERIAL_NAMES,
    TISSUE_MATERIAL,
    class_materials,
    label_volume_to_mu,
    material_table,
    mu_per_mm,
)
from fedsim_app.ctsim.measure import (
    mean_hu_per_tissue,
    mtf_from_disk_edge,
    noise_power_spectrum,
    nps_mean_frequency,
)
from fedsim_app.ctsim.operator import CTOperator
from fedsim_app.ctsim.render import FIDELITIES, render, render_fast, render_physics
from fedsim_app.ctsim.scanner import ScannerProfile, list_scanners, load_scanner
from fedsim_app.ctsim.simulate import hu_to_mu, mu_to_hu, simulate
from fedsim_app.ctsim.spectra import effective_energy_keV, kramers_spectrum

__all__ = [
    "FIDELITIES", "MATERIAL_NAMES", "TISSUE_MATERIAL", "CTOperator", "CoarseCT",
    "ScannerProfile", "class_materials", "effective_energy_keV", "hu_to_mu", "kramers_spectrum",
    "label_volume_to_mu", "list_scanners", "load_scanner", "material_table",
    "mean_hu_per_tissue", "mtf_from_disk_edge", "mu_per_mm", "mu_to_hu",
    "noise_power_spectrum", "nps_mean_frequency", "render", "render_fast", "render_physics",
    "simulate",
]
