"""export_result writes readable NIfTI, PLY and JSON."""

from __future__ import annotations

import json

import numpy as np

from fedsim_app.io import read_nifti
from fedsim_app.pipeline import FedSimModel, PipelinePreset, SampleState, export_result


def test_export_round_trip(tmp_path):
    import trimesh

    r = FedSimModel(PipelinePreset("tiny", 32, 16)).render(SampleState.random(2))
    files = export_result(r, tmp_path / "out")
    labels = read_nifti(files["labels.nii.gz"], kind="label")
    np.testing.assert_array_equal(labels.array, r.labels)
    np.testing.assert_allclose(labels.grid.affine, r.grid.affine, atol=1e-4)
    image = read_nifti(files["image.nii.gz"])
    np.testing.assert_allclose(image.array, r.ct_hu, atol=1e-3)
    coarse = read_nifti(files["coarse_ct.nii.gz"])
    assert coarse.array.shape == read_nifti(files["material_mu_per_mm.nii.gz"]).array.shape
    assert coarse.array.shape == (16, 16, 16)
    np.testing.assert_allclose(coarse.grid.spacing_mm, r.coarse_grid.spacing_mm, rtol=1e-5)
    mesh = trimesh.load(files["meshes/lv_myocardium.ply"], process=False)
    verts, faces = r.meshes["lv_myocardium"]
    np.testing.assert_allclose(mesh.vertices, verts, atol=1e-4)
    assert len(mesh.faces) == len(faces)
    record = json.loads(files["params.json"].read_text())
    assert record["state"] == r.state.to_dict()
    assert "Fix-Mat" in record["material_source"]
    assert "labels.nii.gz" in record["files"]
