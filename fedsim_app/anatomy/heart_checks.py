"""Self-crossing of closed triangle meshes, and smoothing a displacement until none is left.

The procedural heart (:mod:`fedsim_app.anatomy.heart`) and the template registration
(:mod:`fedsim_app.shape.register`) both move the vertices of a clean mesh and must not
leave it crossing itself; both use these checks and the same repair.
"""

from __future__ import annotations

import numpy as np


def crossing_pairs(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(P, 2) face index pairs of one closed mesh that cross each other.

    Pairs sharing a vertex are adjacent by construction and skipped; the others whose
    bounding spheres overlap are tested edge against triangle (both ways,
    Möller-Trumbore on segments), which finds every transversal crossing.
    """
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    tri = v[f]  # (F, 3, 3)
    centre = tri.mean(1)
    radius = np.linalg.norm(tri - centre[:, None], axis=2).max(1)
    pairs = cKDTree(centre).query_pairs(2 * float(radius.max()), output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    near = np.linalg.norm(centre[a] - centre[b], axis=1) <= radius[a] + radius[b]
    shared = (f[a][:, :, None] == f[b][:, None, :]).any((1, 2))
    a, b = a[near & ~shared], b[near & ~shared]
    hit = _edges_cross(tri[a], tri[b]) | _edges_cross(tri[b], tri[a])
    return np.stack([a[hit], b[hit]], axis=1)


def _edges_cross(t1: np.ndarray, t2: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """(P,) whether any edge of triangle ``t1[p]`` passes through triangle ``t2[p]``."""
    out = np.zeros(len(t1), bool)
    e1, e2 = t2[:, 1] - t2[:, 0], t2[:, 2] - t2[:, 0]  # (P, 3)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        o, d = t1[:, i], t1[:, j] - t1[:, i]  # segment o + s·d, s in [0, 1]
        p = np.cross(d, e2)
        det = (e1 * p).sum(1)
        ok = np.abs(det) > eps
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tv = o - t2[:, 0]
        u = (tv * p).sum(1) * inv
        q = np.cross(tv, e1)
        w = (d * q).sum(1) * inv
        s = (e2 * q).sum(1) * inv
        out |= ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (s >= 0) & (s <= 1)
    return out


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised face normals (F, 3) (twice the area, along the winding)."""
    tri = np.asarray(vertices, float)[faces]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def neighbour_mean(faces: np.ndarray, n: int):
    """Sparse (n, n) operator: each vertex's mean over its edge neighbours."""
    from scipy.sparse import coo_matrix, diags

    f = np.asarray(faces, np.int64)
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # each edge counted once whatever the number of faces sharing it
    deg = np.asarray(adj.sum(1)).ravel()
    return diags(1.0 / np.maximum(deg, 1)) @ adj


def untangle(base: np.ndarray, moved: np.ndarray, faces: np.ndarray, passes: int = 60,
             smooth=None) -> np.ndarray:
    """``moved`` with the displacement from ``base`` smoothed where faces folded or crossed.

    ``base`` is a clean mesh (no crossing). Around the faces whose normal turned against
    ``base``'s or that cross another face (and their neighbours, a ring widened every
    ten passes) the displacement is replaced by 0.8 × its neighbours' mean, pulling the
    patch back towards ``base``; only the tangled patch changes. Returns ``(V, 3)``;
    it may still be tangled after ``passes`` (callers count what is left).
    """
    smooth = neighbour_mean(faces, len(base)) if smooth is None else smooth
    u = np.asarray(moved, float) - base
    normals0 = face_normals(base, faces)
    for k in range(passes):
        cur = base + u
        bad = (face_normals(cur, faces) * normals0).sum(1) <= 0
        bad[crossing_pairs(cur, faces).ravel()] = True
        if not bad.any():
            break
        ring = np.zeros(len(base), bool)
        ring[faces[bad].ravel()] = True
        for _ in range(1 + k // 10):  # a wider patch when a narrow one did not untangle
            ring |= (smooth @ ring.astype(float)) > 0
        u[ring] = 0.8 * (smooth @ u)[ring]
    return base + u
