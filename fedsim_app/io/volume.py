"""A volume on the canonical grid, and the reorientation to and from file orientations.

A NIfTI file stores voxels ``(i, j, k)`` and an affine to world mm. Any axis-aligned
orientation (``LAS``, ``LPS``, ``PIR``, ...: a permutation of the axes and a flip of
each) is brought to the canonical layout of :mod:`fedsim_app.io.grid`: array ``(z, y, x)``
with x toward R, y toward A and z toward S. The original axis codes are kept in
:attr:`Volume.orientation` so a writer can restore them.

Oblique affines (a rotation that is not a multiple of 90 degrees) are reoriented to the
closest canonical axes; the residual rotation is dropped and reported (policy
``"warn"``, the default, emits :class:`ObliqueAffineWarning`; ``"error"`` raises
:class:`~fedsim_app.io.errors.ObliqueError`). The canonical grid keeps the file's
voxel spacing and the world position of the first voxel, so a small obliquity moves
far voxels by at most ``extent * sin(angle)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nibabel import orientations as ornt_mod

from fedsim_app.io.errors import ObliqueError
from fedsim_app.io.grid import Grid

CANONICAL = "RAS"
# Below this angle an affine counts as axis-aligned: float32 headers carry ~1e-7 noise.
OBLIQUE_TOL_DEG = 1e-3


class ObliqueAffineWarning(UserWarning):
    """An oblique affine was reoriented to the closest canonical axes."""


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D array on a canonical grid.

    Parameters
    ----------
    array : (nz, ny, nx) intensities (``kind="image"``) or integer labels (``"label"``)
    grid : the canonical grid of ``array``
    source_path : the file it was read from, if any
    orientation : axis codes of the file it came from (e.g. ``"LAS"``); ``"RAS"`` otherwise
    kind : ``"image"`` (resampled linearly) or ``"label"`` (nearest)
    oblique_deg : rotation dropped when an oblique affine was reoriented (0 when aligned)
    """

    array: np.ndarray
    grid: Grid
    source_path: Path | None = None
    orientation: str = CANONICAL
    kind: str = "image"
    oblique_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.array.ndim != 3 or tuple(self.array.shape) != self.grid.shape:
            raise ValueError(f"array shape {self.array.shape} does not match grid "
                             f"{self.grid.shape}")
        if self.kind not in ("image", "label"):
            raise ValueError(f"kind must be 'image' or 'label', got {self.kind!r}")
        if len(self.orientation) != 3:
            raise ValueError("orientation must be 3 axis codes like 'LAS', got "
                             f"{self.orientation!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.shape

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return self.grid.spacing_mm

    def with_array(self, array: np.ndarray, grid: Grid | None = None, **changes) -> Volume:
        """A copy holding ``array`` (on ``grid`` if given), other fields kept."""
        fields = dict(source_path=self.source_path, orientation=self.orientation,
                      kind=self.kind, oblique_deg=self.oblique_deg)
        fields.update(changes)
        return Volume(array, grid if grid is not None else self.grid, **fields)


def oblique_angle_deg(affine: np.ndarray) -> float:
    """Largest angle between a voxel axis of ``affine`` and its closest world axis."""
    cols = np.asarray(affine, dtype=float)[:3, :3]
    cols = cols / np.linalg.norm(cols, axis=0, keepdims=True)
    cosines = np.clip(np.abs(cols).max(axis=0), -1.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


def to_canonical(
    data_ijk: np.ndarray,
    affine: np.ndarray,
    *,
    path: Path | None = None,
    oblique: str = "warn",
) -> tuple[np.ndarray, Grid, str, float]:
    """Reorient file-ordered voxels to the canonical ``(z, y, x)`` RAS layout.

    Parameters
    ----------
    data_ijk : (ni, nj, nk) voxels in file order
    affine : 4x4 voxel → world (RAS mm) affine of ``data_ijk``
    path : named in warnings and errors
    oblique : ``"warn"`` or ``"error"`` for affines that are not axis-aligned

    Returns
    -------
    array (nz, ny, nx), grid, original axis codes (e.g. ``"LAS"``), dropped angle in degrees
    """
    affine = np.asarray(affine, dtype=float)
    angle = oblique_angle_deg(affine)
    if angle > OBLIQUE_TOL_DEG:
        what = f"oblique affine ({angle:.2f} degrees from the closest canonical axes)"
        if oblique == "error":
            raise ObliqueError(path, what, "resample it to an axis-aligned grid first "
                               "(e.g. with SimpleITK or 3D Slicer) or read with oblique='warn'")
        warnings.warn(f"{path}: {what}; reoriented to the closest axes, rotation dropped",
                      ObliqueAffineWarning, stacklevel=3)
    else:
        angle = 0.0
    src = ornt_mod.io_orientation(affine)
    codes = "".join(ornt_mod.ornt2axcodes(src))
    transform = ornt_mod.ornt_transform(src, ornt_mod.axcodes2ornt(CANONICAL))
    data_ras = ornt_mod.apply_orientation(data_ijk, transform)  # (nx, ny, nz)
    aff_ras = affine @ ornt_mod.inv_ornt_aff(transform, data_ijk.shape)
    spacing_xyz = np.linalg.norm(aff_ras[:3, :3], axis=0)
    grid = Grid(tuple(data_ras.shape[::-1]), tuple(spacing_xyz[::-1]), tuple(aff_ras[:3, 3]))
    array = np.ascontiguousarray(data_ras.transpose(2, 1, 0))  # (nz, ny, nx)
    return array, grid, codes, angle


def from_canonical(array_zyx: np.ndarray, grid: Grid, orientation: str = CANONICAL):
    """Canonical ``(z, y, x)`` array → file-ordered voxels and affine in ``orientation``.

    Returns
    -------
    data_ijk, affine (4x4)
    """
    codes = tuple(orientation.upper())
    try:
        target = ornt_mod.axcodes2ornt(codes)
    except ValueError as exc:  # nibabel: repeated or unknown codes
        raise ValueError(f"orientation {orientation!r} is not 3 distinct axis codes") from exc
    if np.isnan(target).any():
        raise ValueError(f"orientation {orientation!r} is not 3 axis codes from L/R, A/P, S/I")
    data_ras = array_zyx.transpose(2, 1, 0)  # (nx, ny, nz)
    transform = ornt_mod.ornt_transform(ornt_mod.axcodes2ornt(CANONICAL), target)
    data_ijk = ornt_mod.apply_orientation(data_ras, transform)
    affine = grid.affine @ ornt_mod.inv_ornt_aff(transform, data_ras.shape)
    return np.ascontiguousarray(data_ijk), affine
