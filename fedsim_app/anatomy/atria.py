"""The two atria: star-shaped ellipsoids with a flat valve side, veins and appendage.

Each atrium is ``centre + r(d) d`` over the template sphere directions ``d`` (world
orientation), so it is a valid closed surface for any positive radius function, and
"is this point inside?" has a cheap exact answer that is used to push structures apart.
"""

from __future__ import annotations

import numpy as np

from fedsim_app.anatomy.shapes import bump, ellipsoid_radius, plane_radius, softmin

# Bumps as (direction (world), relative height, angular half-width rad).
LA_BUMPS = (
    (np.array([-0.8, -0.5, 0.45]), 0.45, 0.24),  # left superior pulmonary vein
    (np.array([-0.8, -0.5, -0.35]), 0.4, 0.24),  # left inferior pulmonary vein
    (np.array([0.8, -0.5, 0.45]), 0.45, 0.24),  # right superior pulmonary vein
    (np.array([0.8, -0.5, -0.35]), 0.4, 0.24),  # right inferior pulmonary vein
    (np.array([-0.75, 0.6, 0.35]), 0.35, 0.28),  # left atrial appendage
)
RA_BUMPS = (
    (np.array([0.1, -0.2, 1.0]), 0.45, 0.3),  # superior vena cava
    (np.array([0.1, -0.3, -1.0]), 0.35, 0.3),  # inferior vena cava
    (np.array([-0.3, 0.8, 0.6]), 0.35, 0.3),  # right atrial appendage
)


class StarAtrium:
    """Ellipsoid (semi-axes along world x, y, z) with radial bumps, flattened by the
    floor plane ``x·axis_u = floor_h`` on its valve side (toward the ventricles)."""

    def __init__(self, centre, semi_axes, floor_h: float, axis_u, bumps) -> None:
        self.centre = np.asarray(centre, dtype=float)
        self.semi_axes = np.asarray(semi_axes, dtype=float)
        self.floor_h, self.axis_u, self.bumps = floor_h, np.asarray(axis_u), bumps

    def moved(self, shift: np.ndarray) -> StarAtrium:
        return StarAtrium(
            self.centre + shift, self.semi_axes, self.floor_h, self.axis_u, self.bumps
        )

    def radius(self, d: np.ndarray) -> np.ndarray:
        r = ellipsoid_radius(d, self.semi_axes)
        for axis, height, width in self.bumps:
            r = r * bump(d, axis, height, width)
        floor = plane_radius(d, self.axis_u, self.floor_h - self.centre @ self.axis_u)
        return softmin(r, floor, 8.0)

    def vertices(self, sphere: np.ndarray) -> np.ndarray:
        return self.centre[None, :] + self.radius(sphere)[:, None] * sphere

    def penetration(self, points: np.ndarray) -> np.ndarray:
        """How deep (mm, radially) each point lies inside; 0 outside."""
        rel = points - self.centre
        dist = np.linalg.norm(rel, axis=1)
        d = rel / np.maximum(dist, 1e-9)[:, None]
        return np.maximum(self.radius(d) - dist, 0.0)


def push_apart(
    moving: StarAtrium,
    sphere: np.ndarray,
    other_vertices: np.ndarray,
    other_depth,
    direction: np.ndarray,
    gap_mm: float,
) -> StarAtrium:
    """Translate ``moving`` along ``direction`` by the least distance (bisection, then
    ``gap_mm``) at which none of its vertices lies inside the other shape
    (``other_depth(points) -> mm``) and none of ``other_vertices`` lies inside it; a
    shape that does not touch the other is returned unchanged."""
    direction = direction / np.linalg.norm(direction)

    def clash(t: float) -> float:
        m = moving.moved(direction * t)
        return max(
            float(other_depth(m.vertices(sphere)).max(initial=0.0)),
            float(m.penetration(other_vertices).max(initial=0.0)),
        )

    depth = clash(0.0)
    if depth <= 0.0:
        return moving
    lo, hi = 0.0, depth + 1.0
    while clash(hi) > 0.0 and hi < 1e3:
        lo, hi = hi, 2.0 * hi
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if clash(mid) > 0.0 else (lo, mid)
    return moving.moved(direction * (hi + gap_mm))
