"""Toy corresponded hearts made of deformed ellipsoids (tests, benchmarks, fallbacks).

Seven icosphere-based ellipsoids stand in for the seven structures, in roughly
cardiac positions (world mm, RAS+). Each population member deforms them smoothly,
so the vertex correspondence is exact by construction.
"""

from __future__ import annotations

import numpy as np

from fedsim_app.io.labels_core import STRUCTURES
from fedsim_app.shape.model import Topology

# (centre xyz mm, radii xyz mm) per structure
_LAYOUT: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "lv_blood_pool": ((15.0, 0.0, 2.0), (18.0, 16.0, 28.0)),
    "lv_myocardium": ((15.0, 0.0, 0.0), (27.0, 25.0, 38.0)),
    "rv": ((-18.0, 14.0, -4.0), (20.0, 16.0, 32.0)),
    "la": ((12.0, -24.0, 34.0), (19.0, 14.0, 14.0)),
    "ra": ((-26.0, -10.0, 28.0), (17.0, 17.0, 17.0)),
    "aorta": ((2.0, -6.0, 52.0), (10.0, 10.0, 24.0)),
    "pulmonary_artery": ((-10.0, 16.0, 48.0), (9.0, 9.0, 20.0)),
}


def toy_topology(subdivisions: int = 3) -> tuple[Topology, np.ndarray]:
    """Topology of the toy heart and its unit-sphere vertices (one icosphere, (v, 3))."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    v = np.asarray(sphere.vertices, float)
    f = np.asarray(sphere.faces, np.int64)
    topo = Topology.from_meshes(STRUCTURES, [f] * len(STRUCTURES), [len(v)] * len(STRUCTURES))
    return topo, v


def toy_population(
    n: int, seed: int = 0, subdivisions: int = 3, amplitude: float = 1.0, rigid: bool = False
) -> tuple[np.ndarray, Topology]:
    """``n`` corresponded toy hearts: (n, V, 3) vertices and their topology.

    Parameters
    ----------
    amplitude : scales the random deformation (0 gives ``n`` copies of one heart)
    rigid : also apply a random similarity transform to each heart
    """
    rng = np.random.default_rng(seed)
    topo, unit = toy_topology(subdivisions)
    shapes = []
    for _ in range(n):
        parts = []
        for name in STRUCTURES:
            centre, radii = (np.array(a) for a in _LAYOUT[name])
            radii = radii * (1 + amplitude * 0.08 * rng.standard_normal(3))
            centre = centre + amplitude * 2.0 * rng.standard_normal(3)
            # smooth bump: radial modulation by a random low-order harmonic
            k = rng.standard_normal(3)
            bump = 1 + amplitude * 0.05 * np.sin(unit @ k + rng.uniform(0, 2 * np.pi))
            parts.append(centre + unit * bump[:, None] * radii)
        x = np.concatenate(parts)
        if rigid:
            from fedsim_app.shape.params import euler_to_matrix

            rot = euler_to_matrix(rng.uniform(-0.5, 0.5, 3))
            x = rng.uniform(0.8, 1.2) * x @ rot.T + rng.uniform(-10, 10, 3)
        shapes.append(x)
    return np.stack(shapes), topo
