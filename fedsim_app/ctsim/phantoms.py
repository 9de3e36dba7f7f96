"""Small analytic phantoms for checks, benchmarks and demos (not anatomy)."""

from __future__ import annotations

import numpy as np

#: Class values of `chest_phantom` and their materials.
CHEST_CLASSES: dict[int, str] = {
    0: "air", 1: "soft_tissue", 2: "fat", 3: "lung", 4: "blood_iodine", 5: "myocardium",
    6: "bone", 7: "water",
}


def _centres(n: int, spacing: float) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2) * spacing


def chest_phantom(shape, spacing_mm, *, body_radius_mm: float | None = None) -> np.ndarray:
    """A cylindrical chest: fat-lined soft-tissue body, two lungs, a contrast-filled
    heart inside a myocardial wall, a spine rod and a water vial; uint8 classes (nz, ny, nx)
    with `CHEST_CLASSES` meanings. The cylinder spans the middle 3/4 of the z axis.
    """
    nz, ny, nx = shape
    sz, sy, sx = (spacing_mm,) * 3 if np.isscalar(spacing_mm) else spacing_mm
    z = _centres(nz, sz)[:, None, None]
    y = _centres(ny, sy)[None, :, None]
    x = _centres(nx, sx)[None, None, :]
    radius = body_radius_mm or 0.42 * min(nx * sx, ny * sy)
    half_z = 0.375 * nz * sz
    labels = np.zeros(shape, dtype=np.uint8)
    slab = np.abs(z) <= half_z

    def disk(cx, cy, rx, ry=None):
        ry = rx if ry is None else ry
        return slab & (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0)

    labels[disk(0, 0, radius)] = 2
    labels[disk(0, 0, 0.9 * radius)] = 1
    labels[disk(-0.45 * radius, 0.05 * radius, 0.3 * radius, 0.45 * radius)] = 3
    labels[disk(0.45 * radius, 0.05 * radius, 0.3 * radius, 0.45 * radius)] = 3
    labels[disk(0.05 * radius, 0.25 * radius, 0.3 * radius)] = 5
    labels[disk(0.05 * radius, 0.25 * radius, 0.2 * radius)] = 4
    labels[disk(0, -0.65 * radius, 0.12 * radius)] = 6
    labels[disk(0, -0.25 * radius, 0.12 * radius)] = 7
    return labels


def water_cylinder(shape, spacing_mm, radius_mm: float) -> np.ndarray:
    """Boolean (nz, ny, nx) mask of a z-aligned cylinder through the whole volume."""
    nz, ny, nx = shape
    sz, sy, sx = (spacing_mm,) * 3 if np.isscalar(spacing_mm) else spacing_mm
    y = _centres(ny, sy)[:, None]
    x = _centres(nx, sx)[None, :]
    disk = x**2 + y**2 <= radius_mm**2
    return np.broadcast_to(disk, shape).copy()
