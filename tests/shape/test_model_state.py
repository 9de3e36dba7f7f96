"""A shape model as checkpoint state, and the shapes that stand for its population."""

import io

import numpy as np
import pytest
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.shape import load_atlas_ssm
from fedsim_app.shape.model import ShapeModel, build_ssm


def test_state_round_trips_through_a_weights_only_load():
    atlas = load_atlas_ssm()
    buf = io.BytesIO()
    torch.save({"ssm": atlas.to_state()}, buf)
    buf.seek(0)
    back = ShapeModel.from_state(torch.load(buf, weights_only=True)["ssm"])
    assert back.topology.names == atlas.topology.names
    assert np.array_equal(back.topology.faces, atlas.topology.faces)
    for name in ("mean", "modes", "eigenvalues", "center_mm"):
        assert np.array_equal(getattr(back, name), getattr(atlas, name)), name
    assert back.ranges == atlas.ranges and back.size_mm == atlas.size_mm


def test_damaged_state_is_named():
    state = load_atlas_ssm().to_state()
    del state["modes"]
    with pytest.raises(FedSimError, match="run/checkpoint.pt: its shape model is incomplete"):
        ShapeModel.from_state(state, "run/checkpoint.pt")


def test_state_of_another_format_is_refused():
    state = load_atlas_ssm().to_state()
    state["format_version"] = torch.tensor(99)
    with pytest.raises(FedSimError, match="ck.pt: its shape model has format 99"):
        ShapeModel.from_state(state, "ck.pt")


def test_population_has_the_models_mean_and_covariance():
    atlas = load_atlas_ssm()
    pop = atlas.population()
    used = int((atlas.eigenvalues > 1e-12 * atlas.eigenvalues[0]).sum())
    assert pop.shape == (used + 1, atlas.n_vertices, 3)
    flat = pop.reshape(len(pop), -1)
    assert np.allclose(flat.mean(0), atlas.mean.reshape(-1), atol=1e-9)
    coords = (flat - flat.mean(0)) @ atlas.modes[:, :used]  # (k, used) mode coordinates
    cov = coords.T @ coords / (len(pop) - 1)
    assert np.allclose(cov, np.diag(atlas.eigenvalues[:used]), rtol=1e-5, atol=1e-3)  # f32 modes
    # no shape is an extreme one: within 3 standard deviations along every mode
    assert (np.abs(coords) / np.sqrt(atlas.eigenvalues[:used]) < 3).all()
    # an SSM built from them is the model again (up to Procrustes' re-alignment)
    again = build_ssm(pop, atlas.topology, atlas.ranges)
    assert np.abs(again.mean - atlas.mean).max() < 0.1  # mm
    assert np.allclose(again.eigenvalues[:5], atlas.eigenvalues[:5], rtol=0.01)
    with pytest.raises(ValueError, match="cannot carry"):
        atlas.population(k=used)
