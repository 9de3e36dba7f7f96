"""FedSimModel: stage caching, replay, provenance labels, agreement with the chain."""

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
    from fedsim_app.shape import ShapeSampler

    s = SampleState.random(3, "b")
    assert s.site == "B"
    np.testing.assert_allclose(s.params, ShapeSampler().sample(3)[0])  # the one sampler
    assert SampleState.from_dict(s.to_dict()) == s
    assert SampleState(params=(5.0,) + (0.0,) * 20).params[0] == 1.0
    with pytest.raises(FedSimError):
        SampleState(params=(0.0,) * 3)


def test_result_shapes_and_provenance(model):
    r = model.render(SampleState())
    assert r.labels.shape == r.ct_hu.shape == (32, 32, 32)
    assert r.coarse_ct_hu.shape == r.material_mu_per_mm.shape == (16, 16, 16)
    assert set(np.unique(r.labels)) == set(range(8))  # all seven structures and background
    assert len(r.meshes) == 7
    assert "Fix-Mat" in r.material_source and "no enhancer" in r.ct_source
    rec = r.record()
    assert rec["material_source"] == r.material_source and rec["ct_source"] == r.ct_source
    assert rec["site"]["key"] == "A" and rec["site"]["scanner"] == "site_a"
    # blood with contrast is brighter than myocardium
    assert r.ct_hu[r.labels == 1].mean() > r.ct_hu[r.labels == 2].mean() + 50


def test_unknown_site_is_a_clear_error(model):
    with pytest.raises(FedSimError, match="unknown site"):
        model.render(SampleState(site="site_a"))


def test_same_state_same_result():
    s = SampleState.random(7)
    a = FedSimModel(TINY).render(s)
    b = FedSimModel(TINY).render(s)
    for attr in ("labels", "material_mu_per_mm", "coarse_ct_hu", "ct_hu"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))


def test_result_is_the_chain_output(model):
    import torch

    s = SampleState.random(5, "C")
    r = model.render(s)
    out = model.generator("C")(params=torch.tensor([s.params], dtype=torch.float32))
    np.testing.assert_array_equal(r.labels, out.labels[0].numpy())
    np.testing.assert_allclose(r.material_mu_per_mm, out.mu[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(r.coarse_ct_hu, out.coarse_hu[0].numpy(), atol=1e-3)
    np.testing.assert_allclose(r.ct_hu, out.ct_hu[0].numpy(), atol=1e-3)
    assert r.ct_source == out.enhancer_source


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


def test_site_switch_recomputes_material_and_sensor_only(model):
    s = SampleState.random(11, "A")
    a = model.render(s)
    counts = dict(model.stage_counts)
    b = model.render(s.replace(site="B"))
    assert model.stage_counts["shape"] == counts["shape"]
    assert model.stage_counts["material"] == counts["material"] + 1
    assert model.stage_counts["sensor"] == counts["sensor"] + 1
    assert b.labels is a.labels
    assert np.abs(a.coarse_ct_hu - b.coarse_ct_hu).max() > 1.0
    # back to site A: all cached, nothing recomputed
    model.render(s)
    assert model.stage_counts["sensor"] == counts["sensor"] + 1


def test_enhancer_is_used_and_named():
    import torch

    class Offset(torch.nn.Module):
        def forward(self, coarse_up, labels, k_frac):
            return coarse_up + 0.1 * (labels > 0)[:, None]

    plain = FedSimModel(TINY).render(SampleState())
    r = FedSimModel(TINY, enhancers={"A": Offset()}).render(SampleState())
    assert "Offset" in r.ct_source
    heart = r.labels > 0
    np.testing.assert_allclose(r.ct_hu[heart], plain.ct_hu[heart] + 100.0, atol=1e-2)
    np.testing.assert_allclose(r.ct_hu[~heart], plain.ct_hu[~heart], atol=1e-3)


def test_coarse_matrix_and_direct_paths_agree(small_coarse_model, monkeypatch):
    """Before the site's system matrix exists the coarse CT takes diffct's direct path;
    after it is built, the matrix path gives the same HU."""
    from fedsim_app.models.coarse_ct import CoarseScanner

    model = small_coarse_model
    s = SampleState.random(2)
    model.prepare_site("A")
    assert model.site_ready("A")
    fast = model.render(s)
    monkeypatch.setattr(CoarseScanner, "matrix_ready", property(lambda self: False))
    direct = FedSimModel(SMALL_COARSE).render(s)
    assert fast.coarse_ct_hu.shape == (8, 8, 8)
    assert np.abs(direct.coarse_ct_hu - fast.coarse_ct_hu).max() < 1.0
