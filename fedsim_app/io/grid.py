"""Axis-aligned voxel grids in world millimetres (RAS+).

Conventions (``../DESIGN.md``): arrays are indexed ``(z, y, x)`` and ``spacing_mm`` is
given in the same order. World coordinates are millimetres in RAS+ (x toward the
patient's Right, y Anterior, z Superior), and points are stored ``(x, y, z)`` as mesh
libraries expect. Every volume inside the engine lives on a canonical grid: array axis
x runs along +x (R), y along +y (A), z along +z (S); readers reorient to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A canonical (RAS+, axis-aligned) voxel grid.

    Parameters
    ----------
    shape : (nz, ny, nx)
    spacing_mm : (sz, sy, sx), all > 0
    origin_mm : world (x, y, z) of the centre of voxel ``[0, 0, 0]``

    Examples
    --------
    >>> g = Grid.centered((4, 4, 4), 2.0)
    >>> g.index_to_world([[0, 0, 0]]).tolist()
    [[-3.0, -3.0, -3.0]]
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        spacing = tuple(float(s) for s in self.spacing_mm)
        origin = tuple(float(s) for s in self.origin_mm)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"Grid shape must be 3 positive sizes (z, y, x), got {self.shape}")
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"Grid spacing_mm must be 3 positive values, got {self.spacing_mm}")
        if len(origin) != 3:
            raise ValueError(f"Grid origin_mm must be (x, y, z), got {self.origin_mm}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", origin)

    @classmethod
    def centered(
        cls,
        shape: int | tuple[int, int, int],
        spacing_mm: float | tuple[float, float, float],
        center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> Grid:
        """A grid whose centre lies at ``center_mm`` (world x, y, z)."""
        shape3 = (shape,) * 3 if isinstance(shape, int) else tuple(shape)
        sp3 = (float(spacing_mm),) * 3 if np.isscalar(spacing_mm) else tuple(spacing_mm)
        # half extent per world axis (x, y, z) from (z, y, x) sizes
        half = [(shape3[2 - a] - 1) * sp3[2 - a] / 2.0 for a in range(3)]
        origin = tuple(float(center_mm[a] - half[a]) for a in range(3))
        return cls(shape3, sp3, origin)

    @property
    def spacing_xyz(self) -> np.ndarray:
        return np.array(self.spacing_mm[::-1], dtype=float)

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Size of the field of view (z, y, x) in mm, voxel edges included."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing_mm, strict=True))

    @property
    def center_mm(self) -> np.ndarray:
        """World ``(x, y, z)`` of the grid's centre (the middle of its field of view)."""
        return self.index_to_world((np.asarray(self.shape, dtype=float) - 1) / 2.0)

    @property
    def affine(self) -> np.ndarray:
        """NIfTI affine for the array transposed to ``(x, y, z)`` order."""
        aff = np.eye(4)
        aff[:3, :3] = np.diag(self.spacing_xyz)
        aff[:3, 3] = self.origin_mm
        return aff

    def index_to_world(self, ijk_zyx: np.ndarray) -> np.ndarray:
        """Voxel indices ``(..., 3)`` in ``(z, y, x)`` order → world ``(x, y, z)`` mm."""
        idx = np.asarray(ijk_zyx, dtype=float)[..., ::-1]
        return idx * self.spacing_xyz + np.asarray(self.origin_mm)

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """World ``(..., 3)`` ``(x, y, z)`` mm → fractional voxel indices ``(z, y, x)``."""
        idx = (np.asarray(xyz, dtype=float) - np.asarray(self.origin_mm)) / self.spacing_xyz
        return idx[..., ::-1]

    def axis_centers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates of voxel centres along z, y and x (three 1-D arrays)."""
        ox, oy, oz = self.origin_mm
        sz, sy, sx = self.spacing_mm
        nz, ny, nx = self.shape
        return oz + sz * np.arange(nz), oy + sy * np.arange(ny), ox + sx * np.arange(nx)

    def napari_kwargs(self) -> dict:
        """``scale`` and ``translate`` (z, y, x) so napari shows this grid in mm."""
        ox, oy, oz = self.origin_mm
        return {"scale": tuple(self.spacing_mm), "translate": (oz, oy, ox)}
