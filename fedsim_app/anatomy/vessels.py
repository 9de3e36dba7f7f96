"""The great vessels as capped tubes swept along smooth centrelines."""

from __future__ import annotations

import numpy as np

from fedsim_app.anatomy.shapes import catmull_rom, tube_vertices


def bend_radius(line: np.ndarray) -> np.ndarray:
    """Radius of curvature (mm) at the interior points of a polyline ``(R, 3)``."""
    a, b, c = line[:-2], line[1:-1], line[2:]
    ab, bc, ca = (np.linalg.norm(x, axis=1) for x in (b - a, c - b, a - c))
    area2 = np.linalg.norm(np.cross(b - a, c - a), axis=1)  # twice the triangle area
    return ab * bc * ca / np.maximum(2.0 * area2, 1e-12)


def unfold(line: np.ndarray, radii: np.ndarray, margin: float = 1.25) -> np.ndarray:
    """Smooth a centreline where it bends tighter than ``margin`` x the tube radius (the
    inner wall would fold through itself); the two end points stay where they are."""
    line = line.copy()
    for _ in range(60):
        tight = bend_radius(line) < margin * radii[1:-1]
        if not tight.any():
            break
        mid = 0.5 * (line[:-2] + line[2:])
        line[1:-1] = np.where(tight[:, None], 0.5 * line[1:-1] + 0.5 * mid, line[1:-1])
    return line


class Tube:
    """A centreline ``(R, 3)`` with ring radii ``(R,)``; vertices on the tube template."""

    def __init__(self, line: np.ndarray, radii: np.ndarray) -> None:
        self.line, self.radii = line, radii

    @classmethod
    def through(cls, points: list[np.ndarray], n_rings: int, radius_of) -> Tube:
        line = catmull_rom(np.array(points), n_rings)
        radii = radius_of(np.linspace(0.0, 1.0, n_rings))
        return cls(unfold(line, radii), radii)

    def vertices(self, n_around: int) -> np.ndarray:
        return tube_vertices(self.line, self.radii, n_around)

    def depth(self, points: np.ndarray) -> np.ndarray:
        """How deep (mm) each point lies inside the tube (nearest ring centre; points
        beyond either cap count as outside)."""
        diff = points[:, None, :] - self.line[None, :, :]  # (P, R, 3)
        dist = np.linalg.norm(diff, axis=-1)
        k = np.argmin(dist, axis=1)
        tangent = np.gradient(self.line, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        along = np.einsum("pi,pi->p", diff[np.arange(len(points)), k], tangent[k])
        beyond = ((k == 0) & (along < 0)) | ((k == len(self.line) - 1) & (along > 0))
        radial = np.sqrt(np.maximum(dist[np.arange(len(points)), k] ** 2 - along**2, 0.0))
        return np.where(beyond, 0.0, np.maximum(self.radii[k] - radial, 0.0))


def clear_of(tube: Tube, other: Tube, gap_mm: float, keep_start: int = 2) -> Tube:
    """Bend ``tube`` away from ``other`` where their walls would cross: ring centres move
    perpendicular to ``other``'s centreline by the missing clearance, smoothed along the
    tube; the first ``keep_start`` rings (attached to a ventricle) stay put."""
    line = tube.line.copy()
    for _ in range(4):
        diff = line[:, None, :] - other.line[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        k = np.argmin(dist, axis=1)
        d = dist[np.arange(len(line)), k]
        need = np.maximum(tube.radii + other.radii[k] + gap_mm - d, 0.0)
        if need.max() <= 1e-3:
            break
        away = diff[np.arange(len(line)), k] / np.maximum(d, 1e-9)[:, None]
        shift = need[:, None] * away
        # smooth the correction along the vessel so it bends instead of kinking
        kernel = np.array([0.25, 0.5, 0.25])
        for _ in range(3):
            padded = np.concatenate([shift[:1], shift, shift[-1:]])
            shift = sum(w * padded[i : i + len(shift)] for i, w in enumerate(kernel))
        ramp = np.clip((np.arange(len(line)) - keep_start + 1) / 3.0, 0.0, 1.0)
        line = line + 1.2 * shift * ramp[:, None]
    return Tube(unfold(line, tube.radii), tube.radii)
