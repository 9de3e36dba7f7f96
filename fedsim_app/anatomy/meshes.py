"""The :class:`HeartMeshes` container and mesh measurements (volumes, overlaps)."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from fedsim_app.anatomy.templates import Topology, signed_volume, template_topology


class HeartMeshes:
    """Seven closed triangle meshes of one heart, on the fixed template topology.

    ``vertices[name]`` is ``(N_k, 3)`` float64 world mm (RAS+); ``faces[name]`` is the
    shared ``(F_k, 3)`` int64 template (outward winding). ``lv_myocardium`` holds the
    EPICARDIAL surface (myocardium = inside it and not inside ``lv_blood_pool``).
    """

    def __init__(self, vertices: dict[str, np.ndarray], params=None) -> None:
        topo = template_topology()
        self.topology: Topology = topo
        self.names: tuple[str, ...] = topo.names
        self.faces: dict[str, np.ndarray] = topo.faces
        self.vertices: dict[str, np.ndarray] = {}
        for name in self.names:
            v = np.asarray(vertices[name], dtype=np.float64)
            if v.shape != (topo.n_vertices[name], 3):
                raise ValueError(
                    f"{name}: expected vertices of shape ({topo.n_vertices[name]}, 3), "
                    f"got {v.shape}"
                )
            self.vertices[name] = v
        self.params = params

    def __repr__(self) -> str:
        pop = getattr(self.params, "population", None)
        return f"HeartMeshes(n_vertices={self.topology.n_total}, population={pop!r})"

    def as_trimesh(self, name: str):
        """One structure as a ``trimesh.Trimesh`` (``process=False``: order kept)."""
        import trimesh

        return trimesh.Trimesh(self.vertices[name].copy(), self.faces[name].copy(), process=False)

    def stacked_vertices(self) -> np.ndarray:
        """All vertices ``(V, 3)``, structures concatenated in ``STRUCTURES`` order."""
        return np.concatenate([self.vertices[n] for n in self.names])

    def with_vertices(self, stacked: np.ndarray) -> HeartMeshes:
        """A heart with the same topology and new vertices ``(V, 3)`` (e.g. an SSM decode)."""
        stacked = np.asarray(stacked, dtype=np.float64)
        if stacked.shape != (self.topology.n_total, 3):
            raise ValueError(
                f"expected stacked vertices ({self.topology.n_total}, 3), got {stacked.shape}"
            )
        sl = self.topology.slices
        return HeartMeshes({n: stacked[sl[n]] for n in self.names})

    @classmethod
    def from_stacked(cls, stacked: np.ndarray) -> HeartMeshes:
        """Build from a stacked ``(V, 3)`` vertex array alone."""
        sl = template_topology().slices
        stacked = np.asarray(stacked, dtype=np.float64)
        return cls({n: stacked[s] for n, s in sl.items()})

    def volumes_ml(self) -> dict[str, float]:
        """Volume enclosed by each mesh, mL (``lv_myocardium``: the whole epicardium)."""
        return {
            n: signed_volume(self.vertices[n], self.faces[n]) / 1000.0 for n in self.names
        }

    def myocardium_ml(self) -> float:
        """Epicardial volume minus LV blood-pool volume, mL."""
        v = self.volumes_ml()
        return v["lv_myocardium"] - v["lv_blood_pool"]

    def bounds_mm(self) -> np.ndarray:
        """``(2, 3)`` min and max corner of all vertices."""
        s = self.stacked_vertices()
        return np.stack([s.min(0), s.max(0)])


def parity_fill(
    vertices: np.ndarray, faces: np.ndarray, axes: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Voxelize a closed mesh: ``(nx, ny, nz)`` bool, True where the sample point
    ``(axes[0][i], axes[1][j], axes[2][k])`` lies inside (ray parity along +z).

    Every triangle is tested against the sample columns under its xy bounding box
    (vectorised over all faces), each crossing toggles the columns above it, and a
    cumulative sum along z gives the parity.
    """
    xs, ys, zs = (np.asarray(a, dtype=float) for a in axes)
    # a tiny sub-voxel shift keeps rays off mesh edges and vertices
    xs = xs + 1.1e-4 * np.pi
    ys = ys + 1.3e-4 * np.e
    tri = vertices[faces]  # (F, 3, 3)
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    lo, hi = tri.min(1), tri.max(1)
    ix0 = np.maximum(np.ceil((lo[:, 0] - xs[0]) / dx), 0).astype(int)
    ix1 = np.minimum(np.floor((hi[:, 0] - xs[0]) / dx), len(xs) - 1).astype(int)
    iy0 = np.maximum(np.ceil((lo[:, 1] - ys[0]) / dy), 0).astype(int)
    iy1 = np.minimum(np.floor((hi[:, 1] - ys[0]) / dy), len(ys) - 1).astype(int)
    nxf, nyf = np.maximum(ix1 - ix0 + 1, 0), np.maximum(iy1 - iy0 + 1, 0)
    count = nxf * nyf
    fid = np.repeat(np.arange(len(tri)), count)
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ix = ix0[fid] + local % np.maximum(nxf[fid], 1)
    iy = iy0[fid] + local // np.maximum(nxf[fid], 1)
    px, py = xs[ix], ys[iy]
    a, b, c = tri[fid, 0], tri[fid, 1], tri[fid, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    ok = np.abs(det) > 1e-12
    det = np.where(ok, det, 1.0)
    w1 = ((px - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (py - a[:, 1])) / det
    w2 = ((b[:, 0] - a[:, 0]) * (py - a[:, 1]) - (px - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
    w0 = 1.0 - w1 - w2
    hit = ok & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
    z = w0 * a[:, 2] + w1 * b[:, 2] + w2 * c[:, 2]
    dz = zs[1] - zs[0]
    iz = np.clip(np.ceil((z - zs[0]) / dz), 0, len(zs)).astype(int)
    flips = np.zeros((len(xs), len(ys), len(zs) + 1), dtype=np.int32)
    np.add.at(flips, (ix[hit], iy[hit], iz[hit]), 1)
    return (np.cumsum(flips, axis=2)[:, :, : len(zs)] % 2).astype(bool)


def overlap_volumes_ml(hearts: HeartMeshes, spacing_mm: float = 1.0) -> dict[tuple, float]:
    """Pairwise overlap volumes (mL) between the seven closed meshes.

    All meshes are voxelized (:func:`parity_fill`) on one grid of ``spacing_mm`` over the
    heart's bounding box. ``("lv_blood_pool", "lv_myocardium")`` is left out: the blood
    pool lies inside the epicardium by design.
    """
    masks = structure_masks(hearts, spacing_mm)
    voxel_ml = spacing_mm**3 / 1000.0
    out = {}
    for a, b in combinations(hearts.names, 2):
        if {a, b} == {"lv_blood_pool", "lv_myocardium"}:
            continue
        out[(a, b)] = float(np.count_nonzero(masks[a] & masks[b]) * voxel_ml)
    return out


def structure_masks(hearts: HeartMeshes, spacing_mm: float = 1.0) -> dict[str, np.ndarray]:
    """Each mesh voxelized on one shared grid ``(nx, ny, nz)`` over the heart's bounds."""
    lo, hi = hearts.bounds_mm()
    axes = tuple(
        np.arange(lo[k] - spacing_mm, hi[k] + 2 * spacing_mm, spacing_mm) for k in range(3)
    )
    return {n: parity_fill(hearts.vertices[n], hearts.faces[n], axes) for n in hearts.names}


def masks_on_grid(hearts: HeartMeshes, grid) -> dict[str, np.ndarray]:
    """Each mesh voxelized on a :class:`~fedsim_app.io.grid.Grid`: bool ``(nz, ny, nx)``
    per structure, True where the voxel centre lies inside the closed mesh. (A plain
    inside test without label precedence; the shape package's voxelizer makes label
    maps.)"""
    z, y, x = grid.axis_centers()
    return {
        n: parity_fill(hearts.vertices[n], hearts.faces[n], (x, y, z)).transpose(2, 1, 0)
        for n in hearts.names
    }
