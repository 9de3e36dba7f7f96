"""Materials and spectra: values against NIST tables, mixing and ordering rules."""

import numpy as np
import pytest

from fedsim_app.ctsim.materials import (
    MATERIAL_NAMES,
    TISSUE_MATERIAL,
    hu_of,
    label_volume_to_mu,
    material_table,
    mu_per_mm,
    mu_polychromatic_per_mm,
)
from fedsim_app.ctsim.spectra import effective_energy_keV, kramers_spectrum
from fedsim_app.errors import FedSimError


@pytest.mark.parametrize(("energy_keV", "nist_cm2_per_g"), [(40, 0.2683), (60, 0.2059),
                                                             (80, 0.1837), (100, 0.1707)])
def test_water_matches_nist_xcom(energy_keV, nist_cm2_per_g):
    # NIST XCOM / Hubbell-Seltzer water, total with coherent scattering.
    assert mu_per_mm("water", energy_keV) == pytest.approx(nist_cm2_per_g / 10, rel=0.02)


def test_vectorised_energies_and_units():
    e = np.array([50.0, 70.0, 90.0])
    mu = mu_per_mm("muscle", e)
    assert mu.shape == (3,)
    assert np.all(np.diff(mu) < 0)  # attenuation falls with energy above the K-edges here
    assert mu[1] == pytest.approx(mu_per_mm("muscle", 70.0))


def test_iodine_mixing_by_mass():
    e = 60.0
    assert mu_per_mm("blood_iodine", e, iodine_mg_per_ml=0.0) == pytest.approx(
        mu_per_mm("blood", e))
    low = mu_per_mm("blood_iodine", e, iodine_mg_per_ml=5.0)
    high = mu_per_mm("blood_iodine", e, iodine_mg_per_ml=10.0)
    # Contrast enhancement is close to linear in concentration (~25 HU per mg/mL near 60 keV).
    d1 = hu_of("blood_iodine", e, iodine_mg_per_ml=5.0) - hu_of("blood", e)
    d2 = hu_of("blood_iodine", e, iodine_mg_per_ml=10.0) - hu_of("blood", e)
    assert high > low > mu_per_mm("blood", e)
    assert d2 == pytest.approx(2 * d1, rel=0.02)
    assert 15 < d1 / 5 < 45


def test_ct_numbers_are_ordered_and_plausible():
    t = material_table(70.0, iodine_mg_per_ml=12.0)
    assert set(t) == set(MATERIAL_NAMES)
    order = ["air", "lung", "fat", "water", "muscle", "blood", "blood_iodine", "bone"]
    assert [t[n] for n in order] == sorted(t[n] for n in order)
    assert hu_of("air", 70.0) == pytest.approx(-1000, abs=2)
    assert -900 < hu_of("lung", 70.0) < -600
    assert -130 < hu_of("fat", 70.0) < -50
    assert 20 < hu_of("liver", 70.0) < 80
    assert 1000 < hu_of("bone", 70.0) < 2000


def test_label_volume_to_mu_and_tissue_names():
    labels = np.array([[[0, 1], [2, 1]]])
    mu = label_volume_to_mu(labels, {0: "air", 1: "water", 2: "bone"}, 70.0)
    assert mu[0, 0, 1] == pytest.approx(mu_per_mm("water", 70.0), rel=1e-6)
    assert mu[0, 1, 0] > mu[0, 0, 1] > mu[0, 0, 0]
    with pytest.raises(FedSimError, match=r"\[2\]"):
        label_volume_to_mu(labels, {0: "air", 1: "water"}, 70.0)
    assert set(TISSUE_MATERIAL.values()) <= set(MATERIAL_NAMES)
    with pytest.raises(FedSimError, match="unknown material"):
        mu_per_mm("unobtainium", 70.0)


def test_spectra_harden_with_filtration_and_kvp():
    s80 = kramers_spectrum(80.0, al_mm=4.0)
    s120 = kramers_spectrum(120.0, al_mm=4.0)
    s120cu = kramers_spectrum(120.0, al_mm=4.0, cu_mm=0.3)
    for s in (s80, s120, s120cu):
        e, w = s.arrays()
        assert w.sum() == pytest.approx(1.0)
        assert e.max() < s.energies_keV[-1] + 1e-9 <= 120
    assert s80.mean_energy_keV < s120.mean_energy_keV < s120cu.mean_energy_keV
    # A thicker patient hardens the beam: higher effective energy.
    assert effective_energy_keV(s120, 100.0) < effective_energy_keV(s120, 300.0)
    assert 50 < effective_energy_keV(s120, 200.0) < 80


def test_polychromatic_mu_exceeds_mono_at_mean_energy():
    # μ(E) is convex, so the spectrum-weighted mean exceeds μ at the mean energy (Jensen).
    s = kramers_spectrum(100.0, al_mm=5.0)
    e, w = s.arrays()
    poly = mu_polychromatic_per_mm("water", e, w)
    assert poly > mu_per_mm("water", s.mean_energy_keV)


def test_class_materials_cover_the_anatomy_tissues():
    from fedsim_app.ctsim.materials import class_materials

    assert class_materials({0: "AIR", 4: "SPINE", 9: "lv_blood_pool"}) == {
        0: "air", 4: "bone", 9: "blood_iodine"}
    with pytest.raises(FedSimError, match="no material"):
        class_materials({1: "kidney_stone"})
    torso = pytest.importorskip("fedsim_app.anatomy.torso")
    mapping = class_materials({int(t): t.name for t in torso.Tissue})
    assert mapping[int(torso.Tissue.LUNG)] == "lung"
    assert set(mapping.values()) <= set(MATERIAL_NAMES)
