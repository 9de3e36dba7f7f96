"""FedSimModel: stage caching, replay, provenance labels, agreement with ctsim."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim_app.errors import FedSimError
from fedsim_app.pipeline import PRESETS, FedSimModel, PipelinePreset, SampleState, get_preset

TINY = PipelinePreset("tiny", label_size=32, coarse_size=16)
# An 8³ coarse grid: its system matrix builds in seconds where the 16³ one takes minutes,
# and the session's cache is a temporary folder (tests/conftest.py), so it is built each run.
SMALL_COARSE = PipelinePreset("small-coarse", label_size=32, coarse_size=8)


@pytest.fixture(scope="module")
def model():
    return FedSimModel(TINY)


@pytest.fixture(scope="module")
def small_coarse_model():
    return FedSimModel(SMALL_COARSE)


def test_presets_documented():
    assert PRESETS["paper"].label_size == 128 and PRESETS["paper"].coarse_size == 16
    assert PRESETS["interactive"].label_size == 64
    assert get_preset("interactive").block == 4
    with pytest.raises(FedSimError):
        PipelinePreset("bad", label_size=40, coarse_size=16)
    with pytest.raises(FedSimError):
        get_preset("nope")


def test_state_round_trip_and_clamp():
    s = SampleState.random(3, "site_b")
    assert SampleState.from_dict(s.to_dict()) == s
    assert SampleState(params=(5.0,) + (0.0,) * 20).params[0] == 1.0
    with pytest.raises(FedSimError):
        SampleState(params=(0.0,) * 3)


def test_result_shapes_and_provenance(model):
    r = model.render(SampleState())
    assert r.labels.shape == r.full_ct_hu.shape == r.material_mu_per_mm.shape == (32, 32, 32)
    assert r.coarse_ct_hu.shape == r.coarse_material_mu_per_mm.shape == (16, 16, 16)
    assert set(np.unique(r.labels)) == set(range(8))  # all seven structures and background
    assert len(r.meshes) == 7
    assert "Fix-Mat" in r.material_source and "no enhancer" in r.ct_source
    rec = r.record()
    assert rec["material_source"] == r.material_source and rec["ct_source"] == r.ct_source
    # blood with contrast is brighter than myocardium, both brighter than lung
    assert r.full_ct_hu[r.labels == 1].mean() > r.full_ct_hu[r.labels == 2].mean() + 100
    # coarse map is the block mean of the full one
    assert np.isclose(r.coarse_material_mu_per_mm.mean(), r.material_mu_per_mm.mean(), rtol=1e-4)


def test_same_state_same_result():
    s = SampleState.random(7)
    a = FedSimModel(TINY).render(s)
    b = FedSimModel(TINY).render(s)
    for attr in ("labels", "scene", "material_mu_per_mm", "coarse_ct_hu", "full_ct_hu"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))


def test_slider_change_reuses_ssm_and_site(model):
    model.render(SampleState())
    before = dict(model.stage_counts)
    s = SampleState(params=(0.8,) + (0.0,) * 20)
    r = model.render(s)
    assert model.stage_counts["ssm"] == before["ssm"] == 1
    assert model.stage_counts["site"] == before["site"]
    assert model.stage_counts["shape"] == before["shape"] + 1
    assert model.stage_counts["sensor"] == before["sensor"] + 1
    assert not np.array_equal(r.labels, model.render(SampleState()).labels)


def test_site_switch_recomputes_sensor_only(model):
    s = SampleState.random(11, "site_a")
    a = model.render(s)
    counts = dict(model.stage_counts)
    b = model.render(s.replace(site="site_b"))
    assert model.stage_counts["shape"] == counts["shape"]
    assert model.stage_counts["scene"] == counts["scene"]
    assert model.stage_counts["material"] == counts["material"] + 1
    assert model.stage_counts["sensor"] == counts["sensor"] + 1
    assert b.labels is a.labels
    assert abs(float(a.full_ct_hu.std()) - float(b.full_ct_hu.std())) > 1.0
    # back to site A: all cached, nothing recomputed
    model.render(s)
    assert model.stage_counts["sensor"] == counts["sensor"] + 1


def test_full_render_matches_ctsim_render_fast(model):
    import torch

    from fedsim_app.ctsim import render_fast

    r = model.render(SampleState(seed=5))
    profile = model.site("site_a")["profile"]
    ref = render_fast(r.material_mu_per_mm, profile, spacing_mm=tuple(r.grid.spacing_mm),
                      generator=torch.Generator().manual_seed(5)).numpy()
    assert np.abs(ref - r.full_ct_hu).max() < 0.5  # HU; float32 FFTs against float64


def test_coarse_matches_ctsim_coarse_ct(small_coarse_model):
    import torch

    model = small_coarse_model
    r = model.render(SampleState(seed=1))
    ct = model.site("site_a")["coarse"].ct
    ref = ct.render(torch.from_numpy(r.coarse_material_mu_per_mm)).cpu().numpy()
    np.testing.assert_allclose(r.coarse_ct_hu, ref, atol=0.05)


def test_coarse_direct_path_before_the_matrix(small_coarse_model, monkeypatch):
    """Without a cached system matrix the coarse CT takes diffct's direct path (same HU)."""
    from fedsim_app.pipeline.stages import CoarseRenderer

    model = small_coarse_model
    r = model.render(SampleState(seed=2))
    coarse = model.site("site_a")["coarse"]
    model.prepare_site("site_a")
    assert model.site_ready("site_a")
    fast = coarse(r.coarse_material_mu_per_mm)
    monkeypatch.setattr(CoarseRenderer, "matrix_ready", property(lambda self: False))
    direct = coarse(r.coarse_material_mu_per_mm)
    assert np.abs(direct - fast).max() < 1.0
