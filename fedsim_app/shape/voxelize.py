"""Exact, fast voxelization of the seven structure meshes into one label volume.

One pass serves every structure. Rays run along the grid's x axis through the voxel
centres of each ``(z, y)`` row. Every triangle of every mesh is rasterised onto that
``(z, y)`` ray lattice at once (vectorised edge-function tests over each triangle's
small bounding box); each crossing's x position gives the first voxel centre beyond
it, where the structure's bit is XOR-ed into a ``uint8`` accumulator. A cumulative
XOR along x then leaves, in every voxel, the set of structures whose surface the ray
crossed an odd number of times before reaching that voxel centre: the voxels inside
(ray-crossing parity, exact at voxel centres for closed meshes).

Rays that pass exactly through an edge or a vertex are resolved by simulation of
simplicity: the lattice point is treated as if shifted by ``(ε, ε²)`` in ``(y, z)``,
and each edge function is evaluated from its lower-indexed vertex, so that the
triangles sharing an edge or vertex agree bit for bit and the ray is counted once.

Precedence where structures overlap (documented rule, :data:`PRECEDENCE`, the one the
anatomy meshes are built for): the LV blood pool wins over everything; then aorta,
pulmonary artery, RA, LA, RV in that order; the LV myocardium (the closed epicardial
surface) comes last, so myocardium is "inside the epicardium and inside no other
structure".
"""

from __future__ import annotations

import numpy as np

from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import LABEL_OF, STRUCTURES

# Highest precedence first (structure names, internal codes follow labels_core).
PRECEDENCE: tuple[str, ...] = (
    "lv_blood_pool",
    "aorta",
    "pulmonary_artery",
    "ra",
    "la",
    "rv",
    "lv_myocardium",
)


def precedence_lut(names=STRUCTURES, precedence=PRECEDENCE) -> np.ndarray:
    """Table (256,) uint8: bit-set of structures → internal label code.

    Bit ``i`` stands for ``names[i]``; the label is the code of the set structure that
    comes first in ``precedence``; 0 where no bit is set.
    """
    if len(names) > 8:
        raise ValueError("at most 8 structures fit the uint8 bit flags")
    lut = np.zeros(256, np.uint8)
    for flags in range(1, 256):
        for name in precedence:
            if name in names and flags >> names.index(name) & 1:
                lut[flags] = LABEL_OF[name]
                break
    return lut


def structure_flags(vertices_xyz, faces, face_bits, grid: Grid) -> np.ndarray:
    """Bit-set of the structures containing each voxel centre.

    Parameters
    ----------
    vertices_xyz : (V, 3) world mm, or (B, V, 3) for B shapes sharing one topology
        (all rasterised in one pass)
    faces : (F, 3) int indices into the vertices; each structure's faces must form a
        closed surface
    face_bits : (F,) uint8, the bit of the structure a face belongs to (``1 << i``)
    grid : the output grid

    Returns
    -------
    (nz, ny, nx) uint8 flags, or (B, nz, ny, nx)
    """
    nz, ny, nx = grid.shape
    verts = np.asarray(vertices_xyz, float)
    single = verts.ndim == 2
    verts = verts[None] if single else verts
    n_b = len(verts)
    v = (verts - np.asarray(grid.origin_mm)) / grid.spacing_xyz  # (B, V, 3) index units
    faces = np.asarray(faces, np.int64)
    tri = v[:, faces].reshape(-1, 3, 3)  # (B·F, 3 corners, 3 xyz)
    ty, tz = tri[..., 1], tri[..., 2]
    y0 = np.maximum(np.ceil(ty.min(1)), 0).astype(np.int64)
    y1 = np.minimum(np.floor(ty.max(1)), ny - 1).astype(np.int64)
    z0 = np.maximum(np.ceil(tz.min(1)), 0).astype(np.int64)
    z1 = np.minimum(np.floor(tz.max(1)), nz - 1).astype(np.int64)
    cy = np.maximum(y1 - y0 + 1, 0)
    count = cy * np.maximum(z1 - z0 + 1, 0)
    keep = np.nonzero(count)[0]
    acc = np.zeros((n_b * nz, ny, nx + 1), np.uint8)
    if len(keep):
        n_f = len(faces)
        shape_of = keep // n_f
        # global vertex ids of the kept faces: shape b's vertices follow shape b - 1's
        gfaces = faces[keep % n_f] + (shape_of * v.shape[1])[:, None]
        bits = np.asarray(face_bits, np.uint8)[keep % n_f]
        _rasterise(acc, v.reshape(-1, 3), gfaces, bits, y0[keep], z0[keep],
                   cy[keep], count[keep], shape_of * nz)
    np.bitwise_xor.accumulate(acc, axis=2, out=acc)
    out = acc[..., :nx].reshape(n_b, nz, ny, nx)
    return out[0] if single else out


def _rasterise(acc, v, faces, bits, y0, z0, cy, count, z_offset) -> None:
    """XOR each triangle's bit into ``acc`` just beyond its crossings with the rays."""
    nx1 = acc.shape[2]
    ny = acc.shape[1]
    # one row per (triangle, lattice point in its bounding box)
    tid = np.repeat(np.arange(len(faces)), count)
    start = np.cumsum(count) - count
    local = np.arange(len(tid)) - start[tid]
    cyt = cy[tid]
    iy = y0[tid] + local % cyt
    iz = z0[tid] + local // cyt
    py, pz = iy.astype(float), iz.astype(float)
    # edge functions (a→b, b→c, c→a), each computed from its lower-indexed vertex
    signs = []
    evals = []
    for i, j in ((0, 1), (1, 2), (2, 0)):
        ia, ib = faces[:, i], faces[:, j]
        flip = np.where(ia < ib, 1.0, -1.0)[tid]
        lo = np.minimum(ia, ib)
        hi = np.maximum(ia, ib)
        ay, az = v[lo, 1], v[lo, 2]
        dy, dz = v[hi, 1] - ay, v[hi, 2] - az
        e = dy[tid] * (pz - az[tid]) - dz[tid] * (py - ay[tid])
        # simulation of simplicity: a tie takes the sign of the (ε, ε²) shift's effect
        tie = np.where(dz != 0, -np.sign(dz), np.sign(dy))[tid]
        signs.append(np.where(e != 0, np.sign(e), tie) * flip)
        evals.append(e * flip)
    inside = (signs[0] == signs[1]) & (signs[1] == signs[2]) & (signs[0] != 0)
    if not inside.any():
        return
    e_ab, e_bc, e_ca = (e[inside] for e in evals)
    t = tid[inside]
    xa, xb, xc = (v[faces[t, k], 0] for k in range(3))
    total = e_ab + e_bc + e_ca
    # barycentric weight of a corner is the edge function of the opposite edge
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (e_bc * xa + e_ca * xb + e_ab * xc) / total
    x = np.where(total != 0, x, (xa + xb + xc) / 3.0)
    k = np.clip(np.floor(x).astype(np.int64) + 1, 0, nx1 - 1)
    flat = ((iz[inside] + z_offset[t]) * ny + iy[inside]) * nx1 + k
    np.bitwise_xor.at(acc.reshape(-1), flat, bits[t])


def voxelize(ssm_or_topology, vertices_xyz, grid: Grid) -> np.ndarray:
    """Label volume (nz, ny, nx) uint8, internal codes 1..7, of one decoded heart.

    Parameters
    ----------
    ssm_or_topology : a :class:`~fedsim_app.shape.model.ShapeModel` or
        :class:`~fedsim_app.shape.model.Topology` (structure names, faces, ranges)
    vertices_xyz : (V, 3) world mm, all structures stacked as in the topology
    grid : any canonical grid

    Examples
    --------
    >>> labels = voxelize(ssm, ssm.decode(np.zeros(21)), default_grid(ssm))  # doctest: +SKIP
    """
    topo = getattr(ssm_or_topology, "topology", ssm_or_topology)
    flags = structure_flags(vertices_xyz, topo.faces, topo.face_bits(), grid)
    return precedence_lut(topo.names)[flags]


def voxelize_meshes(meshes, grid: Grid) -> np.ndarray:
    """Label volume from ``{structure name: (vertices (V, 3), faces (F, 3))}``.

    Also takes an anatomy ``HeartMeshes`` (anything with ``vertices`` and ``faces`` dicts
    keyed by structure name). Missing structures are simply absent.
    """
    if hasattr(meshes, "vertices") and hasattr(meshes, "faces"):
        meshes = {n: (meshes.vertices[n], meshes.faces[n]) for n in meshes.vertices}
    names = [n for n in STRUCTURES if n in meshes]
    verts, faces, bits, off = [], [], [], 0
    for name in names:
        vv, ff = meshes[name]
        vv = np.asarray(vv, float)
        verts.append(vv)
        faces.append(np.asarray(ff, np.int64) + off)
        bits.append(np.full(len(ff), 1 << STRUCTURES.index(name), np.uint8))
        off += len(vv)
    flags = structure_flags(np.concatenate(verts), np.concatenate(faces),
                            np.concatenate(bits), grid)
    return precedence_lut()[flags]


def heart_mask(labels: np.ndarray) -> np.ndarray:
    """Binary heart mask (bool): any of the seven structures."""
    return np.asarray(labels) > 0
