"""Fixed-topology template meshes: one per structure, shared by every heart.

Vertex ``i`` of a structure is the same template point in every heart (the deformation
maps template points, it never re-meshes), which is what gives the statistical shape
model its correspondence. Chambers are deformed unit spheres (icosphere, 3 subdivisions:
642 vertices, 1280 faces); the two great vessels are capped tubes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedsim_app.io.labels_core import STRUCTURES

SPHERE_SUBDIVISIONS = 3
# Tube sizes (rings along the centreline, vertices around each ring).
AORTA_RINGS, AORTA_AROUND = 28, 20
PA_RINGS, PA_AROUND = 16, 20
TUBES = {"aorta": (AORTA_RINGS, AORTA_AROUND), "pulmonary_artery": (PA_RINGS, PA_AROUND)}


@lru_cache(maxsize=4)
def icosphere(subdivisions: int = SPHERE_SUBDIVISIONS) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere ``(vertices (N, 3), faces (F, 3))``, outward winding, deterministic.

    Written here rather than taken from a mesh library so that the vertex order (and so
    the correspondence the shipped SSM relies on) never changes with a library version.
    """
    t = (1.0 + 5.0**0.5) / 2.0
    verts = [
        (-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0),
        (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
        (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1),
    ]  # fmt: skip
    faces = [
        (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
        (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
        (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
        (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
    ]  # fmt: skip
    v = [np.array(p, dtype=float) / np.linalg.norm(p) for p in verts]
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def midpoint(i: int, j: int, cache: dict = cache) -> int:
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = v[i] + v[j]
                v.append(m / np.linalg.norm(m))
                cache[key] = len(v) - 1
            return cache[key]

        new_faces = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return np.array(v), np.array(faces, dtype=np.int64)


def tube_faces(n_rings: int, n_around: int) -> np.ndarray:
    """Faces of a capped tube: ring ``k`` vertex ``j`` is ``k * n_around + j``; the two cap
    centres are the last two vertices (start cap, end cap). Outward winding when rings
    advance along the centreline and ``j`` turns counter-clockwise seen from the start."""
    k = np.arange(n_rings - 1)[:, None]
    j = np.arange(n_around)[None, :]
    a = k * n_around + j
    b = k * n_around + (j + 1) % n_around
    c = a + n_around
    d = b + n_around
    side = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)]
    )
    start, end = n_rings * n_around, n_rings * n_around + 1
    jj = np.arange(n_around)
    last = (n_rings - 1) * n_around
    cap0 = np.stack([np.full(n_around, start), (jj + 1) % n_around, jj], -1)
    cap1 = np.stack([np.full(n_around, end), last + jj, last + (jj + 1) % n_around], -1)
    return np.concatenate([side, cap0, cap1]).astype(np.int64)


@dataclass(frozen=True)
class Topology:
    """Faces and vertex counts per structure, identical for every heart.

    ``slices[name]`` selects that structure's rows in the stacked ``(V, 3)`` vertex array
    (structures concatenated in :data:`STRUCTURES` order).
    """

    names: tuple[str, ...]
    faces: dict[str, np.ndarray]
    n_vertices: dict[str, int]

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name in self.names:
            out[name] = slice(start, start + self.n_vertices[name])
            start += self.n_vertices[name]
        return out

    @property
    def n_total(self) -> int:
        return int(sum(self.n_vertices.values()))

    def stacked_faces(self) -> np.ndarray:
        """All faces ``(F, 3)`` indexing the stacked vertex array."""
        sl = self.slices
        return np.concatenate([self.faces[n] + sl[n].start for n in self.names])


@lru_cache(maxsize=1)
def template_topology() -> Topology:
    """The fixed topology of every heart this package builds (read-only arrays)."""
    _, sphere_faces = icosphere()
    n_sphere = len(icosphere()[0])
    faces, counts = {}, {}
    for name in STRUCTURES:
        if name in TUBES:
            n_rings, n_around = TUBES[name]
            faces[name] = tube_faces(n_rings, n_around)
            counts[name] = n_rings * n_around + 2
        else:
            faces[name] = sphere_faces
            counts[name] = n_sphere
        faces[name].setflags(write=False)
    return Topology(names=STRUCTURES, faces=faces, n_vertices=counts)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed triangle mesh (mm³ for mm vertices); negative if the
    winding points inward."""
    tri = vertices[faces]  # (F, 3 corners, 3 xyz)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
