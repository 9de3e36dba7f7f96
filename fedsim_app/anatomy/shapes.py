"""Geometric building blocks that map a template (sphere or tube) onto a shape.

Every map here is injective by construction, so a watertight template stays a watertight,
non-self-intersecting surface:

- star-shaped chambers: a sphere direction ``d`` goes to ``centre + r(d) d`` with r > 0;
- the RV "pillow": the sphere is flattened onto a patch of the LV epicardium given in
  cylindrical coordinates (angle, height) about the LV long axis, and thickened outward;
- vessels: circular rings swept along a smooth centreline (parallel-transport frame).
"""

from __future__ import annotations

import numpy as np


def softmin(a: np.ndarray, b: np.ndarray, p: float = 10.0) -> np.ndarray:
    """Smooth minimum of two positive radii (rounds the crease where two surfaces meet);
    never above ``min(a, b)``."""
    return (a ** (-p) + b ** (-p)) ** (-1.0 / p)


def ellipsoid_radius(d_local: np.ndarray, semi_axes: np.ndarray) -> np.ndarray:
    """Distance from the centre to an ellipsoid along unit directions ``(N, 3)``."""
    return 1.0 / np.sqrt(((d_local / semi_axes) ** 2).sum(-1))


def plane_radius(d: np.ndarray, normal: np.ndarray, distance: float) -> np.ndarray:
    """Distance along ``d`` to the plane ``x·normal = distance`` (> 0); inf where the ray
    leaves the plane behind."""
    cos = d @ normal
    out = np.full(len(d), np.inf)
    ahead = cos > 1e-9
    out[ahead] = distance / cos[ahead]
    return out


def bump(d: np.ndarray, axis: np.ndarray, height: float, width_rad: float) -> np.ndarray:
    """Multiplicative radial bump ``1 + height * g`` centred on direction ``axis`` with a
    flat-topped profile of angular half-width ``width_rad`` (pulmonary veins, appendages)."""
    axis = axis / np.linalg.norm(axis)
    ang = np.arccos(np.clip(d @ axis, -1.0, 1.0))
    return 1.0 + height * np.exp(-((ang / width_rad) ** 4))


def disk_to_square(a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elliptical-grid map of the unit disk onto the square [-1, 1]² (Fong 2015), so the
    rim of the pillow follows a rectangle-like footprint instead of an ellipse."""
    r2 = 2.0 * np.sqrt(2.0)

    def one(x, y):
        t = 2.0 + x * x - y * y
        return 0.5 * np.sqrt(np.maximum(t + r2 * x, 0)) - 0.5 * np.sqrt(np.maximum(t - r2 * x, 0))

    return np.clip(one(a, c), -1, 1), np.clip(one(c, a), -1, 1)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def catmull_rom(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length on a centripetal-free uniform Catmull-Rom
    spline through ``points (K, 3)``."""
    p = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    dense = []
    for i in range(1, len(p) - 2):
        t = np.linspace(0.0, 1.0, 40, endpoint=False)[:, None]
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        dense.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    dense.append(points[-1:])
    dense = np.concatenate(dense)
    seg = np.linalg.norm(np.diff(dense, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    target = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(target, arc, dense[:, k]) for k in range(3)], -1)


def tube_vertices(centreline: np.ndarray, radii: np.ndarray, n_around: int) -> np.ndarray:
    """Vertices of a capped tube (layout of :func:`templates.tube_faces`).

    centreline : (R, 3) ring centres; radii : (R,) ring radii.
    Returns (R * n_around + 2, 3): rings then the two cap centres.
    """
    tangent = np.gradient(centreline, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    # parallel transport: no twist, so ring vertex j keeps its side along the vessel
    seed = np.array([0.0, 0.0, 1.0]) if abs(tangent[0, 2]) < 0.9 else np.array([1.0, 0, 0])
    n1 = np.cross(tangent[0], seed)
    n1 /= np.linalg.norm(n1)
    normals = [n1]
    for k in range(1, len(centreline)):
        v = normals[-1] - (normals[-1] @ tangent[k]) * tangent[k]
        normals.append(v / np.linalg.norm(v))
    n1 = np.array(normals)  # (R, 3)
    n2 = np.cross(tangent, n1)
    ang = 2.0 * np.pi * np.arange(n_around) / n_around
    ring = (
        centreline[:, None, :]
        + radii[:, None, None]
        * (
            np.cos(ang)[None, :, None] * n1[:, None, :]
            + np.sin(ang)[None, :, None] * n2[:, None, :]
        )
    )  # (R, n_around, 3)
    return np.concatenate([ring.reshape(-1, 3), centreline[:1], centreline[-1:]])


def rotation_matrix(rotvec_rad: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation matrix of a rotation vector (radians)."""
    theta = float(np.linalg.norm(rotvec_rad))
    if theta < 1e-12:
        return np.eye(3)
    k = np.asarray(rotvec_rad) / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx
