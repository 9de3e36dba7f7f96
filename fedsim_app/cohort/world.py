"""The world's scene and CT numbers for one case: anatomy, tissue texture, contrast timing.

:func:`sample_world` draws every random choice of the world beyond the heart and torso
sizes (tissue CT numbers, texture and tree seeds, contrast route and mixing, motion) into
a plain dict saved in the case record; :func:`world_scene` and :func:`world_hu` apply it
with no randomness of their own.

Tissue CT numbers at 120 kVp (per-case means drawn from these ranges). Sources were
checked on 2026-12-03 (docs/benchmarks.md, issue 15, lists what each one says); those
marked *unverified* could not be found and stand as recalled:

- fat −115..−95 HU: inside the −190..−30 HU window body-composition CT uses for adipose
  tissue; an oil phantom reads −119 HU at 120 kVp (Hindawi Radiol Res Pract 2012,
  150980, Table 1). Lamba et al. 2014 (AJR 203:1013, two vendors' unenhanced CT) exists;
  its −100..−110 HU is *unverified*.
- skeletal muscle 45..60 HU: 41 HU at 140 kV and 48 HU at 80 kV in contrast CT (Nutrition
  2018, 53:9, PMID 29625351), inside the −29..150 HU muscle window.
- liver in the arterial phase 70..95 HU: unenhanced 55-65 HU plus a little hepatic-artery
  uptake (*unverified*).
- inflated lung −880..−835 HU with a denser dependent (posterior) part: mean lung density
  of normal subjects −770..−875 HU, mean −817 (Clin Radiol 1991, 43:238, PMID 2025994).
- trabecular bone 180..280 HU: L1 at 120 kV averages 226 ± 44 HU under 30 years and falls
  2.5 HU a year (Jang et al. 2019, Radiology 291:360, 20 374 adults); cortical bone
  1300..1700 HU true (an ROI in compact bone reads ~1440 HU; a 700-3000 HU textbook range
  is *unverified*), averaged with marrow over the voxel the cortex (~1.2 mm adult,
  *unverified*) occupies.
- arterial-phase blood 250..450 HU: coronary lumen 299-346 HU (Kawaguchi et al., Circ J
  2014, no. 3, p. 662), aortic root 423-476 HU at 120 kV (PMID 20016900); here from the
  record's iodine (mg/mL) through the material tables, ~28 HU per mg/mL at 120 kVp.
- myocardium at first pass 90..130 HU: unenhanced 40-50 HU plus about a fifth of the
  blood's enhancement (*unverified*; George et al. 2009 was the recalled source).

The record holds these 120-kVp values. A scanner at another tube voltage (site B: 80 kVp,
site C: 100 kVp) sees each tissue as the same mixture of two materials (:data:`HU_MIX`,
the fraction fitted at the reference 120-kVp beam) at its own effective energy, through
the materials' attenuation (xraydb): fat reads lower and bone and iodine higher at low kVp,
as they do in low-kVp scans (:func:`hu_at_energy`).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from fedsim_app.anatomy.chest import WorldTissue as W

#: tissue → (mean range HU, texture std HU, weights of the fine/mid/coarse fields)
TISSUE_HU: dict[int, tuple[tuple[float, float], float, tuple[float, float, float]]] = {
    W.AIR: ((-1000.0, -1000.0), 0.0, (0, 0, 0)),
    W.FAT: ((-115.0, -95.0), 12.0, (0.3, 0.6, 0.4)),
    W.SOFT_TISSUE: ((30.0, 50.0), 10.0, (0.3, 0.6, 0.5)),
    W.LUNG: ((-880.0, -835.0), 22.0, (0.6, 0.6, 0.5)),
    W.MUSCLE: ((45.0, 60.0), 10.0, (0.5, 0.7, 0.3)),
    W.MARROW: ((180.0, 280.0), 45.0, (0.8, 0.5, 0.2)),
    W.LIVER: ((70.0, 95.0), 8.0, (0.2, 0.5, 0.6)),
    W.CARTILAGE: ((80.0, 140.0), 15.0, (0.4, 0.6, 0.3)),
    W.GAS: ((-1000.0, -985.0), 5.0, (1, 0, 0)),
    W.THYMUS: ((40.0, 70.0), 12.0, (0.4, 0.6, 0.4)),
    W.BREAST: ((20.0, 45.0), 40.0, (0.2, 0.8, 0.5)),
    W.STOMACH: ((15.0, 40.0), 10.0, (0.2, 0.5, 0.6)),
}
CORTEX_TRUE_HU = (1300.0, 1700.0)
CORTEX_MM = 1.2  # adult cortical thickness of ribs and vertebrae (scaled by body size)
FIELD_CORR_MM = (0.8, 2.0, 7.0)  # fine, mid, coarse texture fields
BLOOD_TEXTURE_HU = 8.0
#: two materials whose mixture each class is, for its CT number at another tube voltage:
#: ("air", m) is m at a scaled density; marrow and cortex are soft tissue plus bone mineral
HU_MIX: dict[int, tuple[str, str]] = {
    W.FAT: ("air", "fat"), W.SOFT_TISSUE: ("air", "soft_tissue"), W.LUNG: ("air", "lung"),
    W.MUSCLE: ("air", "muscle"), W.MARROW: ("soft_tissue", "bone"), W.LIVER: ("air", "liver"),
    W.CARTILAGE: ("soft_tissue", "bone"), W.THYMUS: ("air", "soft_tissue"),
    W.BREAST: ("fat", "soft_tissue"), W.STOMACH: ("air", "soft_tissue"),
    W.MYOCARDIUM: ("air", "myocardium"), W.CORTICAL_BONE: ("soft_tissue", "bone"),
}
#: the beam the published (120 kVp) CT numbers stand for: 120 kVp, 6 mm Al + 0.1 mm Cu,
#: through 250 mm of water (site A's profile)
REFERENCE_BEAM = {"kvp": 120.0, "al_mm": 6.0, "cu_mm": 0.1, "water_mm": 250.0}
#: beam hardening in `fast`, relative to a scanner with water correction only (1, the
#: `physics` fidelity); below 1, the share a vendor's bone correction leaves
HARDENING_SCALE = (0.4, 1.0)


def _u(rng, lo_hi) -> float:
    return float(rng.uniform(*lo_hi))


def sample_world(rng: np.random.Generator, *, population: str, age_years: float) -> dict:
    """Every random choice of the world for one case, as a JSON-ready dict."""
    adult = population == "adult"
    means = {W(k).name.lower(): _u(rng, v[0]) for k, v in TISSUE_HU.items()}
    # injection route: adults by arm vein (dense SVC when scanned before the saline
    # chase clears it); small children partly by leg vein (dense IVC) instead
    route = "arm" if adult or rng.uniform() < 0.7 else "leg"
    return {
        "texture_seed": int(rng.integers(2**31 - 1)),
        "tree_seed": int(rng.integers(2**31 - 1)),
        "tissue_hu": means,
        "cortex_true_hu": _u(rng, CORTEX_TRUE_HU),
        "myocardium_base_hu": _u(rng, (40.0, 50.0)),
        "myocardium_uptake": _u(rng, (0.17, 0.25)),  # fraction of the blood's enhancement
        "liver_uptake": _u(rng, (0.03, 0.08)),
        "female": bool(adult and rng.uniform() < 0.5),
        "breast_mm": _u(rng, (10.0, 35.0)) if adult else 0.0,
        "sternum_segment_mm": _u(rng, (35.0, 50.0)) if adult else _u(rng, (12.0, 20.0)),
        "scapula_rise_mm": _u(rng, (-20.0, 20.0)),
        "injection_route": route,
        "svc_factor": _u(rng, (1.2, 3.0)) if rng.uniform() < 0.5 else _u(rng, (0.3, 0.9)),
        "ivc_iodine_mg_per_ml": _u(rng, (0.0, 2.0)),
        "ra_inflow_mix": _u(rng, (0.2, 0.6)),  # unopacified IVC blood swirling in the RA
        "aortic_gradient": _u(rng, (0.0, 0.12)),  # descending aorta darker by this fraction
        "trabeculation": _u(rng, (0.4, 0.9)),
        "motion_mm": _u(rng, (0.2, 0.9)) if adult else _u(rng, (0.4, 1.2)),
        "lung_gradient_hu": _u(rng, (30.0, 80.0)),
        # drawn last, so the choices above keep their values for the same arguments
        "hardening_scale": _u(rng, HARDENING_SCALE),
    }


@cache
def reference_energy_keV() -> float:
    """Effective energy (keV) of :data:`REFERENCE_BEAM`, rounded as scanner profiles are."""
    from fedsim_app.ctsim.spectra import effective_energy_keV, kramers_spectrum

    b = REFERENCE_BEAM
    spec = kramers_spectrum(b["kvp"], al_mm=b["al_mm"], cu_mm=b["cu_mm"])
    return round(effective_energy_keV(spec, b["water_mm"]), 2)


@cache
def _mu(name: str, energy_keV: float) -> float:
    from fedsim_app.ctsim.materials import mu_per_mm

    return float(mu_per_mm(name, energy_keV))


def hu_at_energy(hu_ref: float, mix: tuple[str, str], energy_keV: float) -> tuple[float, float]:
    """CT number at ``energy_keV`` of a tissue reading ``hu_ref`` at the reference beam.

    The tissue is the mixture ``(1 − f) a + f b`` of the two materials in ``mix`` whose μ
    at :func:`reference_energy_keV` gives ``hu_ref``; its μ at ``energy_keV`` follows.

    Returns
    -------
    hu : float, the CT number at ``energy_keV`` (``hu_ref`` itself at the reference)
    slope : float, d hu / d hu_ref (scales the tissue's texture, a density variation)
    """
    ref = reference_energy_keV()
    if abs(energy_keV - ref) < 1e-9:
        return float(hu_ref), 1.0
    a, b = mix
    w_ref, w = _mu("water", ref), _mu("water", energy_keV)
    a_ref, b_ref = _mu(a, ref), _mu(b, ref)
    f = (w_ref * (1.0 + hu_ref / 1000.0) - a_ref) / (b_ref - a_ref)
    mu = _mu(a, energy_keV) + f * (_mu(b, energy_keV) - _mu(a, energy_keV))
    slope = (_mu(b, energy_keV) - _mu(a, energy_keV)) / (b_ref - a_ref) * w_ref / w
    return 1000.0 * (mu - w) / w, float(slope)


def world_scene(record, labels: np.ndarray):
    """Background classes and lung trees of a record's world around its heart labels.

    Returns
    -------
    classes : (n, n, n) uint8 :class:`WorldTissue` (heart label voxels: MYOCARDIUM)
    trees : :class:`fedsim_app.anatomy.mediastinum.Trees`
    lung : (n, n, n) bool, the lungs before the trees were drawn
    """
    from fedsim_app.anatomy import TorsoParams
    from fedsim_app.anatomy.chest import build_chest
    from fedsim_app.anatomy.mediastinum import build_mediastinum

    w = record.world
    grid = record.grid
    torso = TorsoParams.from_dict(record.torso)
    classes, cavity, _, spine = build_chest(
        torso, grid, breast_mm=w["breast_mm"] if w["female"] else 0.0,
        sternum_segment_mm=w["sternum_segment_mm"], scapula_rise_mm=w["scapula_rise_mm"])
    trees, lung = build_mediastinum(classes, cavity, labels, torso, grid, spine,
                                    np.random.default_rng(w["tree_seed"]),
                                    age_years=float(record.heart["age_years"]))
    classes[labels > 0] = W.MYOCARDIUM
    return classes, trees, lung


def _blood_hu(iodine: float, energy_keV: float) -> float:
    from fedsim_app.ctsim.materials import hu_of

    return hu_of("blood_iodine", energy_keV, iodine_mg_per_ml=max(iodine, 0.0))


def world_hu(record, labels: np.ndarray, classes: np.ndarray, trees, lung: np.ndarray,
             energy_keV: float) -> np.ndarray:
    """Ideal CT numbers (HU, float32) of the world: per-tissue means, texture, contrast.

    Each class gets its case mean plus ``std × texture``, the texture a class-specific
    blend of three unit random fields (fine, mid, coarse), gathered through look-up
    tables indexed by the class volume (one pass over the grid, not one per class).
    """
    from fedsim_app.anatomy.fields import random_field, smooth
    from fedsim_app.io.labels_core import LABEL_OF

    w = record.world
    grid = record.grid
    sp = grid.spacing_mm
    h = float(min(sp))
    rng = np.random.default_rng(w["texture_seed"])
    f0, f1, f2 = (random_field(rng, grid.shape, sp, max(c, 0.5 * h)) for c in FIELD_CORR_MM)

    # contrast: blood pools from the record's iodine (~28 HU per mg/mL at 120 kVp)
    plain = _blood_hu(0.0, energy_keV)
    left = _blood_hu(record.iodine_left_mg_per_ml, energy_keV)
    right = _blood_hu(record.iodine_right_mg_per_ml, energy_keV)
    ivc = _blood_hu(w["ivc_iodine_mg_per_ml"], energy_keV)
    svc = _blood_hu(record.iodine_right_mg_per_ml * w["svc_factor"], energy_keV)
    if w["injection_route"] == "leg":
        svc, ivc = ivc, svc
    # the record's 120-kVp CT numbers (and their texture) at this scanner's energy
    at = {k: hu_at_energy(w["tissue_hu"][W(k).name.lower()], HU_MIX[k], energy_keV)
          if k in HU_MIX else (w["tissue_hu"][W(k).name.lower()], 1.0) for k in TISSUE_HU}
    base, myo_slope = hu_at_energy(w["myocardium_base_hu"], HU_MIX[W.MYOCARDIUM], energy_keV)
    myo = base + w["myocardium_uptake"] * (left - plain)
    cortex_frac = min(1.0, CORTEX_MM * (record.torso["vertebra_radius_mm"] / 19.0) / h)
    cortex, cortex_slope = hu_at_energy(w["cortex_true_hu"], HU_MIX[W.CORTICAL_BONE], energy_keV)

    n = max(int(W.STOMACH), 31) + 1
    mean, std, wts = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros((3, n), np.float32)
    for k, (_, sd, weights) in TISSUE_HU.items():
        mean[k], std[k], wts[:, k] = at[k][0], sd * at[k][1], weights
    mean[W.LIVER] += w["liver_uptake"] * (left - plain)
    mean[W.MYOCARDIUM], wts[:, W.MYOCARDIUM] = myo, (0.5, 0.6, 0.3)
    std[W.MYOCARDIUM] = 12.0 * myo_slope
    mean[W.CORTICAL_BONE] = at[W.MARROW][0] * (1 - cortex_frac) + cortex * cortex_frac
    std[W.CORTICAL_BONE], wts[:, W.CORTICAL_BONE] = 60.0 * cortex_slope, (1.0, 0.0, 0.0)
    for cls, value in ((W.AORTA, left), (W.PULMONARY_VEIN, left), (W.PULMONARY_ARTERY, right),
                       (W.SVC, svc), (W.IVC, ivc), (W.CORONARY, left)):
        mean[cls], std[cls], wts[:, cls] = value, BLOOD_TEXTURE_HU, (0.0, 0.0, 1.0)
    wts /= np.maximum(np.linalg.norm(wts, axis=0), 1e-9)
    # heart labels: left and right blood (the myocardium label keeps its class value)
    for name, value in (("lv_blood_pool", left), ("la", left), ("aorta", left),
                        ("rv", right), ("ra", right), ("pulmonary_artery", right)):
        code = 20 + LABEL_OF[name]
        mean[code], std[code], wts[:, code] = value, BLOOD_TEXTURE_HU, (0.0, 0.0, 1.0)
    scene = np.where((labels > 0) & (labels != LABEL_OF["lv_myocardium"]), 20 + labels,
                     classes).astype(np.intp)
    hu = mean[scene] + std[scene] * (wts[0][scene] * f0 + wts[1][scene] * f1
                                     + wts[2][scene] * f2)

    z = grid.axis_centers()[0][:, None, None]
    m = classes == W.AORTA  # the bolus thins down the descending aorta
    ramp = (z - z.min()) / max(float(np.ptp(z)), 1e-6)
    hu[m] -= (left - plain) * w["aortic_gradient"] * np.broadcast_to(1 - ramp, grid.shape)[m]
    y = grid.axis_centers()[1][None, :, None]
    m = classes == W.LUNG  # denser towards the back (gravity-dependent)
    back = (y.max() - y) / max(float(np.ptp(y)), 1e-6)
    hu[m] += (w["lung_gradient_hu"] * at[W.LUNG][1] * np.broadcast_to(back, grid.shape))[m]
    m = labels == LABEL_OF["ra"]  # unopacified IVC inflow swirling into the RA
    mix = w["ra_inflow_mix"] / (1 + np.exp(-2.5 * f2[m]))
    hu[m] += mix * (ivc - right)
    # trabeculae and papillary muscles: myocardial strands in the blood near the wall
    pool = (labels == LABEL_OF["lv_blood_pool"]) | (labels == LABEL_OF["rv"])
    near = np.clip((0.85 - smooth(pool, sp, 3.0)) / 0.35, 0.0, 1.0)
    strands = np.clip((f1 - 0.2) / 0.6, 0.0, 1.0) * near * w["trabeculation"]
    hu[pool] += (strands * (myo - hu))[pool]
    # lung trees with partial volume: the vessel's share of each voxel
    for occ, value in ((trees.arteries, right), (trees.veins, left)):
        m = lung & (occ > 0) & (occ < 1) & (labels == 0)
        hu[m] = hu[m] * (1 - occ[m]) + value * occ[m]
    return hu.astype(np.float32)


#: materials of the world's classes for the physics render (beam hardening); the
#: texture and contrast differences from them travel as an extra μ map
WORLD_MATERIAL = {
    W.AIR: "air", W.FAT: "fat", W.SOFT_TISSUE: "soft_tissue", W.LUNG: "lung",
    W.MUSCLE: "muscle", W.CORTICAL_BONE: "bone", W.MARROW: "soft_tissue", W.LIVER: "liver",
    W.CARTILAGE: "soft_tissue", W.MYOCARDIUM: "myocardium", W.AORTA: "blood_iodine",
    W.PULMONARY_ARTERY: "blood_iodine", W.PULMONARY_VEIN: "blood_iodine", W.SVC: "blood",
    W.IVC: "blood", W.GAS: "air", W.THYMUS: "soft_tissue", W.BREAST: "soft_tissue",
    W.STOMACH: "soft_tissue", W.CORONARY: "blood_iodine",
}


def render_world(record, labels: np.ndarray, fidelity: str | None = None, *,
                 n_views: int | None = None) -> np.ndarray:
    """The record's image (HU, float32) in its world, at ``fidelity`` (default: record's).

    ``physics`` projects one indicator volume per distinct material (about ten, so one
    batch the operator plans itself), with the record's left-heart iodine for every
    opacified pool (their beam hardening), and the world's CT numbers as an extra μ map
    (texture, per-vessel contrast) on top.
    """
    from fedsim_app.ctsim.hardening import hardening_hu
    from fedsim_app.ctsim.render import render_hu_fast, render_physics
    from fedsim_app.ctsim.scanner import load_scanner
    from fedsim_app.ctsim.simulate import water_mu_per_mm
    from fedsim_app.io.labels_core import LABEL_OF

    profile = load_scanner(record.scanner)
    classes, trees, lung = world_scene(record, labels)
    hu = world_hu(record, labels, classes, trees, lung, profile.effective_energy_keV)
    sp = record.grid.spacing_mm
    fidelity = fidelity or record.fidelity
    if fidelity == "fast":
        # records from before the image-domain beam hardening have no scale: none
        scale = float(record.world.get("hardening_scale", 0.0))
        if scale > 0:
            hu = hu + hardening_hu(hu, profile, sp, scale=scale)
        weight = np.clip(trees.heart_blur * 2.0, 0.0, 1.0)
        return render_hu_fast(hu, profile, spacing_mm=sp, motion_weight=weight,
                              motion_mm=record.world["motion_mm"], n_views=n_views,
                              rng=np.random.default_rng(record.noise_seed))
    if fidelity != "physics":
        raise ValueError("fidelity must be 'fast' or 'physics'")
    import torch

    from fedsim_app.ctsim.materials import mu_per_mm

    names = sorted(set(WORLD_MATERIAL.values()))
    code = {n: i for i, n in enumerate(names)}
    lut = np.array([code[WORLD_MATERIAL[W(k)]] for k in range(len(W))], np.uint8)
    scene = lut[classes]
    blood = (labels > 0) & (labels != LABEL_OF["lv_myocardium"])
    scene[blood] = code["blood_iodine"]
    iodine = record.iodine_left_mg_per_ml
    materials = {i: (n, iodine) for i, n in enumerate(names)}
    table = np.array([mu_per_mm(n, profile.effective_energy_keV, iodine_mg_per_ml=iodine)
                      for n in names], np.float32)
    extra = water_mu_per_mm(profile) * (1.0 + hu / 1000.0) - table[scene]
    generator = torch.Generator().manual_seed(record.noise_seed)
    out = render_physics(scene, materials, profile, spacing_mm=sp, generator=generator,
                         extra_mu=extra, n_views=n_views)
    return np.asarray(out.detach().cpu().numpy(), np.float32)
