"""Latent mode's engine: principal directions of the latent normal, slice-first rendering
through the learnt chain, the same latent through every site (no display needed)."""

from __future__ import annotations

import numpy as np
import pytest
from latent_checkpoint import bundle

from fedsim_app.errors import FedSimError
from fedsim_app.pipeline import PipelinePreset
from fedsim_app.pipeline.latent import NOT_IN_CHECKPOINT, LatentModel
from fedsim_app.pipeline.latent_space import LatentSpace

PRESET = PipelinePreset("test", label_size=16, coarse_size=16)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return LatentModel(bundle(tmp_path_factory.mktemp("ck")), PRESET)


def test_directions_are_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + np.eye(6)
    space = LatentSpace.from_prior("A", rng.normal(size=6), cov, rng.normal(size=(5, 6)),
                                   [f"c{i}" for i in range(5)], k=3)
    for u, s in zip(space.directions, space.stds, strict=True):
        np.testing.assert_allclose(cov @ u, s**2 * u, rtol=1e-8, atol=1e-8)
    assert list(space.stds) == sorted(space.stds, reverse=True)
    np.testing.assert_allclose(space.shares, space.stds**2 / np.trace(cov))
    assert space.names()[0] == f"Direction 1 ({100 * space.shares[0]:.1f}%)"
    z = space.random(4)
    moved = space.with_coord(z, 1, 2.5)
    c0, c1 = space.coords(z), space.coords(moved)
    assert c1[1] == pytest.approx(2.5, abs=1e-5)
    np.testing.assert_allclose(np.delete(c1, 1), np.delete(c0, 1), atol=1e-5)
    # the part of z outside the top directions is kept
    resid = lambda v: np.asarray(v) - space.directions.T @ (space.directions @ np.asarray(v))  # noqa: E731
    np.testing.assert_allclose(resid(moved), resid(z), atol=1e-5)
    assert space.random(4) == z and space.random(5) != z
    np.testing.assert_allclose(space.training(2), space.train_latents[2], rtol=1e-6)
    with pytest.raises(FedSimError, match="no case 9"):
        space.training(9)


def test_current_slice_first_then_the_rest_fills_in(model):
    space = model.space("A")
    assert len(space.names()) == 8 and space.dim == 32
    z = space.random(1)
    first = model.render(z, "A", seed=2, slice_index=5)
    assert first.slices_enhanced == 1 and not first.complete
    assert model.stage_counts["enhanced_slices"] == 1
    coarse_up = model.render(z, "A", seed=2, slice_index=5, fill=0)  # cached: no new work
    assert model.stage_counts["enhanced_slices"] == 1
    assert "G_shape" not in first.material_source and "G_material" in first.material_source
    assert "SiteEnhancer" in first.ct_source
    # slice 5 enhanced, slice 12 still the upsampled coarse CT (differs by the tail's bias)
    full = model.render(z, "A", seed=2, slice_index=5, fill=100)
    assert full.complete and full.slices_enhanced == 16
    np.testing.assert_array_equal(full.ct_hu[5], first.ct_hu[5])
    assert not np.allclose(full.ct_hu[12], coarse_up.ct_hu[12])
    np.testing.assert_array_equal(coarse_up.ct_hu[12], first.ct_hu[12])
    # the same volume whatever the order the slices were enhanced in
    other = LatentModel(model.path, PRESET)
    whole = other.render(z, "A", seed=2, slice_index=0, fill=100)
    np.testing.assert_allclose(whole.ct_hu, full.ct_hu, atol=1e-3)
    assert full.latent == z and full.record()["latent"] == list(z)
    assert full.state.site == "A" and len(full.state.params) == 21


def test_coarse_levels_enhancer_slice_first_and_each_structure_at_its_level(tmp_path):
    import torch

    from fedsim_app.models.enhance import structure_levels_of

    path = bundle(tmp_path, sites=("A",), enhancer_levels="coarse")
    model = LatentModel(path, PRESET)
    z = model.space("A").random(1)
    first = model.render(z, "A", seed=2, slice_index=5)
    full = model.render(z, "A", seed=2, slice_index=5, fill=100)
    np.testing.assert_array_equal(full.ct_hu[5], first.ct_hu[5])
    whole = LatentModel(path, PRESET).render(z, "A", seed=2, slice_index=0, fill=100)
    np.testing.assert_allclose(whole.ct_hu, full.ct_hu, atol=1e-3)
    shift = model.scan_generator("A").enhancer.level_shift
    assert float(shift.abs().max()) > 0
    labels = torch.as_tensor(full.labels.astype(np.int64))[None]
    levels = structure_levels_of(torch.as_tensor(full.coarse_ct_hu)[None], labels)[0]
    for c in np.unique(full.labels)[1:]:
        for k in range(len(full.labels)):
            m = full.labels[k] == c
            if m.any():
                want = 1000 * float(levels[c] + shift[c])
                assert abs(float(full.ct_hu[k][m].mean()) - want) < 0.05, (c, k)


def test_injected_noise_enhancer_loads_and_renders_slice_first_as_whole(tmp_path):
    path = bundle(tmp_path, sites=("A",), enhancer_noise="inject")
    model = LatentModel(path, PRESET)
    assert model.scan_generator("A").enhancer.noise == "inject"
    z = model.space("A").random(1)
    first = model.render(z, "A", seed=2, slice_index=5)
    full = model.render(z, "A", seed=2, slice_index=5, fill=100)
    np.testing.assert_array_equal(full.ct_hu[5], first.ct_hu[5])
    # another seed, another texture draw
    other = model.render(z, "A", seed=3, slice_index=5)
    assert float(np.abs(other.ct_hu[5] - first.ct_hu[5]).mean()) > 1.0


def test_case_frame_model_is_shown_in_its_scans_millimetres(tmp_path):
    """A model trained with frame = "case" learnt scans scaled onto the 208 mm frame: its
    renders stand, as its export writes them, at its scans' size (120 mm here), meshes
    and coarse grid too, not at the frame's."""
    fixed = LatentModel(bundle(tmp_path / "fixed", sites=("A",)), PRESET)
    case = LatentModel(bundle(tmp_path / "case", sites=("A",), frame="case"), PRESET)
    z = case.space("A").random(1)
    a, b = fixed.render(z, "A"), case.render(z, "A")
    assert a.grid.extent_mm[0] == pytest.approx(208.0, rel=0.1)
    assert b.grid.spacing_mm[0] == pytest.approx(120.0 / PRESET.label_size)
    assert b.grid.shape == a.grid.shape and b.coarse_grid.shape == a.coarse_grid.shape
    k = b.grid.spacing_mm[0] / a.grid.spacing_mm[0]
    assert b.coarse_grid.spacing_mm[0] == pytest.approx(a.coarse_grid.spacing_mm[0] * k)
    np.testing.assert_allclose(b.grid.center_mm, a.grid.center_mm, atol=1e-6)
    # the same networks (same seed) under either frame: the same labels, the meshes
    # scaled about the centre by the scans' size over the frame's
    np.testing.assert_array_equal(a.labels, b.labels)
    centre = np.asarray(a.grid.center_mm)
    for name, (verts, _faces) in b.meshes.items():
        np.testing.assert_allclose(verts, centre + (a.meshes[name][0] - centre) * k,
                                   atol=1e-3, err_msg=name)


def test_training_case_is_its_own_nearest(model):
    space = model.space("B")
    r = model.render(space.training(2), "B", slice_index=0)
    assert r.novelty["nearest_by_latent"] == space.train_ids[2]
    assert r.novelty["nearest_index"] == 2
    assert r.novelty["latent_distance"] == pytest.approx(0.0, abs=1e-4)
    assert r.novelty["typical_distance"] > 0


def test_one_latent_through_every_site(model):
    z = model.space("A").random(3)
    results = model.render_sites(z, "A", slice_index=8, fill=100)
    assert set(results) == {"A", "B", "C"}
    a, b, c = results["A"], results["B"], results["C"]
    np.testing.assert_array_equal(a.labels, b.labels)  # the shared shape
    np.testing.assert_array_equal(a.labels, c.labels)
    assert not np.allclose(a.ct_hu, b.ct_hu)  # each site's own scanner and enhancer
    assert "SiteEnhancer" in b.ct_source
    assert c.ct_source == NOT_IN_CHECKPOINT and c.complete  # C is not in the bundle
    assert c.state.site == "C"


def test_bad_checkpoint_and_site_are_named(model, tmp_path):
    with pytest.raises(FedSimError, match="no trained checkpoint"):
        LatentModel(tmp_path / "missing.pt", PRESET)
    with pytest.raises(FedSimError, match="not site C"):
        model.space("C")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(FedSimError, match="bad.pt"):
        LatentModel(bad, PRESET)
