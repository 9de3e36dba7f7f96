"""The world around the heart: anatomy classes, tissue texture, contrast, the scanner."""

import dataclasses
import json

import numpy as np
import pytest
from scipy import ndimage

from fedsim_app.anatomy.chest import WorldTissue as W
from fedsim_app.anatomy.fields import random_field, smooth
from fedsim_app.anatomy.tubes import polyline_segments, tube_occupancy
from fedsim_app.cohort import CaseRecord, render_case, sample_case, scene_classes
from fedsim_app.cohort.world import render_world, world_hu, world_scene
from fedsim_app.ctsim.materials import hu_of
from fedsim_app.ctsim.measure import noise_power_spectrum
from fedsim_app.ctsim.operator import CTOperator
from fedsim_app.ctsim.render import central_path_length, noise_sigma_hu, render_hu_fast
from fedsim_app.ctsim.scanner import load_scanner
from fedsim_app.ctsim.simulate import water_mu_per_mm
from fedsim_app.io.grid import Grid
from fedsim_app.sites import load_sites

SIZE = 48


@pytest.fixture(scope="module")
def sites():
    return load_sites()


@pytest.fixture(scope="module")
def adult(sites):
    rec = sample_case(sites["A"], 0, size=SIZE)
    labels, _, _ = scene_classes(rec)
    classes, trees, lung = world_scene(rec, labels)
    profile = load_scanner(rec.scanner)
    hu = world_hu(rec, labels, classes, trees, lung, profile.effective_energy_keV)
    return rec, labels, classes, trees, lung, hu


def test_tube_occupancy_matches_the_cylinder_volume():
    grid = Grid.centered(40, 1.0, (0.0, 0.0, 0.0))
    seg = polyline_segments([[0, 0, -12.0], [0, 0, 12.0]], 5.0)
    occ = tube_occupancy(seg, grid)
    assert occ.min() >= 0 and occ.max() <= 1
    # a capped cylinder: π r² L plus the two half-sphere caps (4/3 π r³)
    expected = np.pi * 25 * 24 + 4 / 3 * np.pi * 125
    assert occ.sum() == pytest.approx(expected, rel=0.08)
    thin = tube_occupancy(polyline_segments([[0, 0, -12.0], [0, 0, 12.0]], 0.3), grid)
    assert 0 < thin.max() < 1, "a sub-voxel vessel keeps a partial share"


def test_random_field_unit_std_scale_and_replay():
    sp = (1.0, 1.0, 1.0)
    fine = random_field(np.random.default_rng(3), (32, 32, 32), sp, 1.0)
    coarse = random_field(np.random.default_rng(3), (32, 32, 32), sp, 4.0)
    assert fine.std() == pytest.approx(1.0, rel=1e-3) and abs(fine.mean()) < 1e-3
    lag = [np.corrcoef(f[:, :, :-2].ravel(), f[:, :, 2:].ravel())[0, 1] for f in (fine, coarse)]
    assert lag[1] > lag[0] + 0.2, "a longer correlation length is smoother"
    again = random_field(np.random.default_rng(3), (32, 32, 32), sp, 1.0)
    np.testing.assert_array_equal(fine, again)
    blurred = smooth(np.ones((8, 8, 8)), sp, 2.0)
    np.testing.assert_allclose(blurred, 1.0, atol=1e-5)


def test_world_adds_background_anatomy_only(adult):
    rec, labels, classes, trees, lung, _ = adult
    present = set(np.unique(classes).tolist())
    for t in (W.FAT, W.MUSCLE, W.CORTICAL_BONE, W.MARROW, W.LUNG, W.AORTA, W.SVC,
              W.PULMONARY_VEIN, W.PULMONARY_ARTERY, W.MYOCARDIUM, W.CORONARY):
        assert int(t) in present, t.name
    assert set(np.unique(labels).tolist()) <= set(range(8))
    assert (classes[labels > 0] == W.MYOCARDIUM).all()
    vessels = (trees.arteries >= 0.5) | (trees.veins >= 0.5)
    assert 0.002 < vessels[lung].mean() < 0.2, "a lung vessel tree, not empty lungs"


def test_tissue_hu_in_published_ranges_with_texture(adult):
    rec, labels, classes, trees, lung, hu = adult
    for t, lo, hi in ((W.FAT, -130, -80), (W.MUSCLE, 30, 75), (W.MARROW, 150, 320),
                      (W.LUNG, -900, -760), (W.LIVER, 60, 130)):
        m = classes == t
        if not m.any():
            continue
        assert lo < np.median(hu[m]) < hi, t.name
        assert hu[m].std() > 4.0, f"{t.name} has texture, not one value"
    assert np.median(hu[classes == W.CORTICAL_BONE]) > np.median(hu[classes == W.MARROW]) + 150
    assert np.percentile(hu, 99) < 1200, "bone is a shell round marrow, not solid"
    lv = hu[labels == 1]
    assert np.median(lv) == pytest.approx(
        hu_of("blood_iodine", load_scanner(rec.scanner).effective_energy_keV,
              iodine_mg_per_ml=rec.iodine_left_mg_per_ml), abs=40)


def test_children_get_a_thymus_and_no_breast(sites):
    rec = sample_case(sites["B"], 2, size=SIZE)
    assert rec.world["breast_mm"] == 0 and not rec.world["female"]
    labels, _, _ = scene_classes(rec)
    classes, _, _ = world_scene(rec, labels)
    assert (classes == W.THYMUS).any()


def test_world_record_replays_and_old_records_still_render(sites):
    rec = sample_case(sites["C"], 1, seed=5, size=32)
    again = CaseRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    a, la = render_case(rec)
    b, lb = render_case(again)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(la.array, lb.array)
    old = {k: v for k, v in rec.to_dict().items() if k != "world"}
    c, lc = render_case(CaseRecord.from_dict(old))  # written before the world existed
    np.testing.assert_array_equal(lc.array, la.array)
    assert not np.array_equal(c.array, a.array)


def test_fast_scanner_noise_has_the_fdk_texture_and_sigma():
    profile = load_scanner("site_b")
    n, sp = 32, (2.0, 2.0, 2.0)
    hu = np.zeros((n, n, n), np.float32)
    out = render_hu_fast(hu, profile, spacing_mm=sp, rng=np.random.default_rng(0))
    op = CTOperator.from_profile(profile, volume_shape=(n, n, n), spacing_mm=sp, device="cpu")
    mu = np.full(hu.shape, water_mu_per_mm(profile))
    path = central_path_length(mu, sp)  # 64 mm of water
    assert out.std() == pytest.approx(noise_sigma_hu(profile, op, path), rel=0.05)
    f, nps, _ = noise_power_spectrum(out, sp)
    assert f[np.argmax(nps)] > 0.15 * f.max(), "ramp-shaped NPS peaks away from zero"
    again = render_hu_fast(hu, profile, spacing_mm=sp, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)


def test_motion_blur_softens_the_heart_only():
    profile = load_scanner("site_b")
    n, sp = 32, (1.0, 1.0, 1.0)
    hu = np.zeros((n, n, n), np.float32)
    hu[:, :, n // 2:] = 400.0
    weight = np.zeros_like(hu)
    weight[: n // 2] = 1.0
    out = render_hu_fast(hu, profile, spacing_mm=sp, rng=np.random.default_rng(0),
                         motion_weight=weight, motion_mm=3.0)
    still = render_hu_fast(hu, profile, spacing_mm=sp, rng=np.random.default_rng(0))
    edge = slice(n // 2 - 2, n // 2 + 2)
    moving = np.abs(np.diff(out[4:12, :, edge].mean(axis=(0, 1))))
    sharp = np.abs(np.diff(still[4:12, :, edge].mean(axis=(0, 1))))
    assert moving.max() < 0.8 * sharp.max()
    np.testing.assert_allclose(out[24:28], still[24:28], atol=2.0)


def test_render_world_rejects_unknown_fidelity(adult):
    rec, labels, *_ = adult
    with pytest.raises(ValueError, match="fidelity"):
        render_world(rec, labels, "cartoon")


def test_physics_extra_mu_shifts_hu_by_its_value():
    import torch

    from fedsim_app.ctsim.phantoms import water_cylinder
    from fedsim_app.ctsim.render import render_physics

    profile = load_scanner("site_b")
    n = 12
    sp = (profile.fov_mm / n,) * 3
    cyl = water_cylinder((n, n, n), sp[0], 0.3 * profile.fov_mm).astype(np.uint8)
    mats = {0: "air", 1: "water"}
    mu_w = water_mu_per_mm(profile)
    extra = np.where(cyl == 1, 0.1 * mu_w, 0.0).astype(np.float32)  # +100 HU
    kw = dict(spacing_mm=sp, noise=False, n_views=36, beam_hardening=False, device="cpu")
    base = render_physics(cyl, mats, profile, **kw)
    more = render_physics(cyl, mats, profile, extra_mu=extra, **kw)
    c = slice(n // 2 - 1, n // 2 + 1)
    diff = float(torch.mean(more[c, c, c] - base[c, c, c]))
    assert diff == pytest.approx(100.0 * abs(profile.hu_slope), rel=0.1)


def test_physics_world_render_runs_and_keeps_the_contrast(sites):
    rec = sample_case(sites["A"], 0, size=16)
    labels, _, _ = scene_classes(rec)
    hu = render_world(rec, labels, "physics", n_views=24)
    assert hu.shape == labels.shape and np.isfinite(hu).all()
    classes, _, _ = world_scene(rec, labels)
    assert np.median(hu[labels == 1]) > np.median(hu[classes == W.FAT]) + 200


def test_contrast_route_and_ra_mixing_follow_the_record(adult):
    import dataclasses

    rec, labels, classes, trees, lung, hu = adult
    energy = load_scanner(rec.scanner).effective_energy_keV
    arm = dataclasses.replace(rec, world={**rec.world, "injection_route": "arm",
                                          "svc_factor": 2.5, "ra_inflow_mix": 0.0})
    leg = dataclasses.replace(rec, world={**rec.world, "injection_route": "leg",
                                          "svc_factor": 2.5, "ra_inflow_mix": 0.6})
    a = world_hu(arm, labels, classes, trees, lung, energy)
    b = world_hu(leg, labels, classes, trees, lung, energy)
    svc, ivc, ra = classes == W.SVC, classes == W.IVC, labels == 5
    assert np.median(a[svc]) > np.median(a[ivc]) + 300, "arm injection: dense SVC"
    assert np.median(b[ivc]) > np.median(b[svc]) + 300, "leg injection: dense IVC"
    assert a[ra].std() < b[ra].std(), "IVC inflow mixing makes the RA inhomogeneous"


def test_fast_beam_hardening_is_recorded_and_darkens_round_dense_structures(sites):
    rec = sample_case(sites["C"], 1, seed=5, size=32)
    scale = rec.world["hardening_scale"]
    assert 0.4 <= scale <= 1.0
    with_bh, labels = render_case(rec)
    old = {k: v for k, v in rec.world.items() if k != "hardening_scale"}
    before = render_case(dataclasses.replace(rec, world=old))[0].array  # record from before
    off = render_case(dataclasses.replace(rec, world={**rec.world, "hardening_scale": 0.0}))
    np.testing.assert_array_equal(before, off[0].array)  # old records replay unchanged
    diff = with_bh.array - before  # same texture and noise draws: the artefact alone
    assert diff.min() < -5.0 and diff.max() < 0.5 * -diff.min()
    # darkest where the dense structures are: contrast-filled blood and bone
    profile = load_scanner(rec.scanner)
    classes, trees, lung = world_scene(rec, labels.array)
    ideal = world_hu(rec, labels.array, classes, trees, lung, profile.effective_energy_keV)
    near_dense = ndimage.binary_dilation(ideal > 200.0, iterations=2)
    assert diff[near_dense].mean() < -2.0
    assert diff[near_dense].mean() < diff[~near_dense].mean() - 2.0


def test_tissues_read_at_the_scanners_energy_80_kvp_site_b(adult):
    from fedsim_app.cohort.world import HU_MIX, hu_at_energy, reference_energy_keV

    rec, labels, classes, trees, lung, hu = adult
    ref = reference_energy_keV()
    assert ref == load_scanner("site_a").effective_energy_keV  # site A's beam is the 120 kVp
    assert hu_at_energy(-105.0, HU_MIX[W.FAT], ref) == (-105.0, 1.0)
    e80 = load_scanner("site_b").effective_energy_keV
    # a tissue of one material reads that material's own xraydb CT number at 80 kVp
    for k in (W.FAT, W.MUSCLE, W.LIVER, W.LUNG):
        m = HU_MIX[k][1]
        assert hu_at_energy(hu_of(m, ref), HU_MIX[k], e80)[0] == pytest.approx(
            hu_of(m, e80), abs=1e-6), k.name
    low = world_hu(rec, labels, classes, trees, lung, e80)  # same scene, site B's beam
    d = {t: np.median(low[classes == t]) - np.median(hu[classes == t])
         for t in (W.FAT, W.MUSCLE, W.MARROW, W.CORTICAL_BONE)}
    assert d[W.FAT] < -20 and abs(d[W.MUSCLE]) < 10, "fat darker, muscle ~ unchanged"
    assert d[W.MARROW] > 0.4 * np.median(hu[classes == W.MARROW]), "bone mineral brighter"
    assert d[W.CORTICAL_BONE] > d[W.MARROW]
    assert low[classes == W.MARROW].std() > hu[classes == W.MARROW].std()
