import numpy as np
import pytest
import trimesh

from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import LABEL_OF, STRUCTURES
from fedsim_app.shape import (
    heart_mask,
    precedence_lut,
    structure_flags,
    voxelize,
    voxelize_batch,
    voxelize_meshes,
)
from fedsim_app.shape.soft import grid_points


def _sphere(radius, centre=(0.0, 0.0, 0.0), axes=(1.0, 1.0, 1.0), subdivisions=4):
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    return np.asarray(m.vertices) * radius * np.asarray(axes) + centre, np.asarray(m.faces)


def test_matches_trimesh_contains_per_structure(toy_ssm, rng):
    pytest.importorskip("rtree")
    v = toy_ssm.decode(rng.uniform(-1, 1, 21))
    grid = Grid.centered((28, 32, 30), (4.1, 3.7, 3.9), tuple(toy_ssm.center_mm + 1.3))
    flags = structure_flags(v, toy_ssm.topology.faces, toy_ssm.topology.face_bits(), grid)
    pts = grid_points(grid)
    for i, name in enumerate(toy_ssm.topology.names):
        mv, mf = toy_ssm.topology.structure(v, name)
        ref = trimesh.Trimesh(mv, mf, process=False).contains(pts).reshape(grid.shape)
        ours = ((flags >> i) & 1).astype(bool)
        assert (ours == ref).mean() >= 0.995, name
        assert ref.sum() > 50


@pytest.mark.parametrize("axes", [(1.0, 1.0, 1.0), (1.0, 0.6, 1.4)])
def test_sphere_and_ellipsoid_volumes(axes):
    r = 20.0
    v, f = _sphere(r, (0.3, -0.2, 0.1), axes)
    grid = Grid.centered((64, 48, 48), 1.0)
    assert np.all(np.abs(v) < 31)  # the grid holds the whole ellipsoid
    labels = voxelize_meshes({"rv": (v, f)}, grid)
    vol = (labels == LABEL_OF["rv"]).sum() * 1.0
    analytic = 4 / 3 * np.pi * r**3 * np.prod(axes)
    assert abs(vol / analytic - 1) < 0.02


def test_rays_through_vertices_and_edges_are_counted_once():
    # an octahedron-like icosphere centred on the lattice: rays hit vertices and edges
    m = trimesh.creation.icosphere(subdivisions=1, radius=6.0)
    grid = Grid.centered(13, 1.0)  # voxel centres at integer mm, through (±6, 0, 0) etc.
    v = np.asarray(m.vertices)
    assert np.isclose(np.abs(v).max(), 6.0)
    labels = voxelize_meshes({"la": (v, m.faces)}, grid)
    inside = labels == LABEL_OF["la"]
    pts = grid_points(grid)
    # reference: convex hull half-space test (points exactly on faces are ambiguous)
    normals, offs = m.face_normals, (m.face_normals * v[m.faces[:, 0]]).sum(1)
    d = pts @ normals.T - offs  # (N, F)
    strict_in = (d < -1e-9).all(1).reshape(grid.shape)
    strict_out = (d > 1e-9).any(1).reshape(grid.shape)
    assert inside[strict_in].all()
    assert not inside[strict_out].any()
    # every row is a run of inside voxels (no parity flip left dangling)
    for row in inside.reshape(-1, 13):
        idx = np.flatnonzero(row)
        if len(idx):
            assert idx[-1] - idx[0] + 1 == len(idx)


def test_precedence_rule():
    grid = Grid.centered(40, 1.0)
    epi = _sphere(15.0, subdivisions=3)
    blood = _sphere(9.0, subdivisions=3)
    rv = _sphere(8.0, (14.0, 0, 0), subdivisions=3)
    aorta = _sphere(5.0, (0, 0, 7.0), subdivisions=3)
    labels = voxelize_meshes(
        {"lv_myocardium": epi, "lv_blood_pool": blood, "rv": rv, "aorta": aorta}, grid
    )

    def at(x, y, z):
        k, j, i = np.rint(grid.world_to_index([x, y, z])).astype(int)
        return labels[k, j, i]

    assert at(0, 0, 0) == LABEL_OF["lv_blood_pool"]  # blood pool over myocardium
    assert at(0, 0, 12) == LABEL_OF["lv_myocardium"]  # between the two surfaces
    assert at(0, 0, 10) == LABEL_OF["aorta"]  # aorta over myocardium, outside blood
    assert at(0, 0, 5) == LABEL_OF["lv_blood_pool"]  # blood pool over aorta
    assert at(12, 0, 0) == LABEL_OF["rv"]  # RV over myocardium
    assert at(19, 0, 0) == LABEL_OF["rv"]
    assert at(0, 0, -19) == 0
    assert set(np.unique(labels)) == {0, 1, 2, 3, 6}
    lut = precedence_lut()
    assert lut[0] == 0 and lut[255] == LABEL_OF["lv_blood_pool"]
    assert lut[1 << STRUCTURES.index("lv_myocardium")] == LABEL_OF["lv_myocardium"]
    mask = heart_mask(labels)
    assert mask.dtype == bool and mask.sum() == (labels > 0).sum()


def test_batch_equals_single(toy_ssm, rng):
    grid = Grid.centered(24, 5.0, tuple(toy_ssm.center_mm))
    p = rng.uniform(-1, 1, (3, 21))
    batch = voxelize_batch(toy_ssm, p, grid, chunk=2)
    for k in range(3):
        np.testing.assert_array_equal(batch[k], voxelize(toy_ssm, toy_ssm.decode(p[k]), grid))
    assert batch.dtype == np.uint8 and batch.max() <= 7


def test_anisotropic_grid_and_offgrid_mesh():
    v, f = _sphere(10.0, (100.0, 0, 0))
    grid = Grid.centered((10, 12, 14), (2.0, 1.5, 1.0))  # sphere entirely outside
    assert voxelize_meshes({"ra": (v, f)}, grid).sum() == 0
    v, f = _sphere(10.0)
    grid = Grid.centered((12, 16, 24), (2.0, 1.5, 1.0))
    lab = voxelize_meshes({"ra": (v, f)}, grid)
    vol = (lab > 0).sum() * 3.0
    assert abs(vol / (4 / 3 * np.pi * 1000) - 1) < 0.03


def test_voxelize_anatomy_heart_equals_model_path():
    anatomy = pytest.importorskip("fedsim_app.anatomy")
    from fedsim_app.shape import topology_from_anatomy

    heart = anatomy.build_heart(anatomy.atlas_params(0))
    topo = topology_from_anatomy(anatomy.template_topology())
    grid = Grid.centered(40, 4.0)
    a = voxelize_meshes(heart, grid)
    b = voxelize(topo, heart.stacked_vertices(), grid)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == set(range(8))
