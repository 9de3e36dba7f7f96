import numpy as np
import pytest

from fedsim_app.errors import FedSimError
from fedsim_app.shape import (
    N_PARAMS,
    ShapeModel,
    build_ssm,
    params_from_rigid,
    rigid_from_params,
)
from fedsim_app.shape.params import ParamRanges


def test_all_modes_reconstruct_training_shapes_exactly(toy_shapes20):
    shapes, topo = toy_shapes20
    model = build_ssm(shapes, topo)
    for x in shapes:
        b, s, rot, t = model.encode(x)
        rec = s * (model.shape_from_weights(b, clamp=False) - model.center_mm) @ rot.T
        rec += model.center_mm + t
        assert np.abs(rec - x).max() < 1e-6


def test_fourteen_modes_residual_matches_dropped_variance(toy_shapes20):
    # Stated tolerance: with 14 of 19 modes the mean squared residual over the training
    # set equals (K-1)/K times the dropped eigenvalues (1e-6 relative), and every
    # training shape is reconstructed within 2 mm RMS per vertex.
    shapes, topo = toy_shapes20
    model = build_ssm(shapes, topo)
    k = len(shapes)
    res2, rms = [], []
    for x in shapes:
        b, s, _, _ = model.encode(x)
        full = model.shape_from_weights(b, clamp=False)
        part = model.shape_from_weights(b[:14], clamp=False)
        res2.append(((full - part) ** 2).sum())
        rms.append(np.sqrt(((full - part) ** 2).sum(1).mean()))
    expected = (k - 1) / k * model.eigenvalues[14:].sum()
    assert abs(np.mean(res2) - expected) <= 1e-6 * expected
    assert max(rms) < 2.0


def test_explained_variance_sorted_and_normalised(toy_ssm):
    ratio = toy_ssm.explained_variance_ratio()
    assert abs(ratio.sum() - 1) < 1e-12
    assert np.all(np.diff(ratio) <= 1e-15)
    assert toy_ssm.modes.shape[1] >= 14
    gram = toy_ssm.modes.T @ toy_ssm.modes
    nz = toy_ssm.eigenvalues > 0
    np.testing.assert_allclose(gram[np.ix_(nz, nz)], np.eye(nz.sum()), atol=1e-10)


def test_mode_weights_are_clamped(toy_ssm, rng):
    p = rng.uniform(-1, 1, N_PARAMS)
    big = p * 5
    np.testing.assert_allclose(toy_ssm.decode(big), toy_ssm.decode(np.clip(big, -1, 1)))
    b = toy_ssm.weights_from_params(np.ones(N_PARAMS))
    np.testing.assert_allclose(b, 1.5 * np.sqrt(toy_ssm.eigenvalues[:14]))
    huge = 100 * np.sqrt(toy_ssm.eigenvalues[:14])
    np.testing.assert_allclose(
        toy_ssm.shape_from_weights(huge), toy_ssm.shape_from_weights(b), atol=1e-9
    )


def test_rigid_round_trip(rng):
    ranges = ParamRanges()
    centre = np.array([3.0, -4.0, 10.0])
    for _ in range(10):
        p = np.concatenate([np.zeros(14), rng.uniform(-0.99, 0.99, 7)])
        tf = rigid_from_params(p, centre, ranges)
        np.testing.assert_allclose(params_from_rigid(tf, ranges), p[14:], atol=1e-10)
        pts = rng.normal(size=(10, 3))
        hom = np.c_[pts, np.ones(10)] @ tf.matrix().T
        np.testing.assert_allclose(hom[:, :3], tf.apply(pts), atol=1e-10)


def test_encode_projects_decoded_shapes_closely(toy_ssm, rng):
    # encode is a projection (Procrustes pose, then modes), not decode's exact inverse:
    # a decoded shape comes back within 0.5 mm (the toy heart spans ~120 mm)
    p = np.concatenate([rng.uniform(-0.5, 0.5, 14), rng.uniform(-0.9, 0.9, 7)])
    v = toy_ssm.decode(p)
    b, s, rot, t = toy_ssm.encode(v)
    rec = s * (toy_ssm.shape_from_weights(b, clamp=False) - toy_ssm.center_mm) @ rot.T
    assert np.abs(rec + toy_ssm.center_mm + t - v).max() < 0.5


def test_decode_torch_matches_numpy(toy_ssm, rng):
    import torch

    p = rng.uniform(-1, 1, (3, N_PARAMS))
    out = toy_ssm.decode_torch(torch.tensor(p)).numpy()
    np.testing.assert_allclose(out, toy_ssm.decode(p), atol=1e-9)


def test_save_load_round_trip(toy_ssm, tmp_path):
    path = toy_ssm.save(tmp_path / "m.npz")
    back = ShapeModel.load(path)
    np.testing.assert_array_equal(back.topology.faces, toy_ssm.topology.faces)
    assert back.topology.names == toy_ssm.topology.names
    p = np.linspace(-1, 1, N_PARAMS)
    # modes are stored as float32: decoded vertices agree to 1e-4 mm
    np.testing.assert_allclose(back.decode(p), toy_ssm.decode(p), rtol=0, atol=1e-4)
    assert back.size_mm == toy_ssm.size_mm
    with np.load(path, allow_pickle=False) as z:
        assert int(z["format_version"]) == 1


def test_load_rejects_other_versions_and_junk(toy_ssm, tmp_path):
    path = toy_ssm.save(tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["format_version"] = np.array(99)
    np.savez(tmp_path / "v99.npz", **arrays)
    with pytest.raises(FedSimError, match="format 99"):
        ShapeModel.load(tmp_path / "v99.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FedSimError):
        ShapeModel.load(tmp_path / "junk.npz")
    with pytest.raises(FedSimError, match="no such"):
        ShapeModel.load(tmp_path / "missing.npz")
