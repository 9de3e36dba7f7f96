"""Load one case of a dataset: image and internal-coded label, checked against each other."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsim_app.io.errors import (
    AffineMismatchError,
    EmptyLabelError,
    MissingImageError,
    ShapeMismatchError,
)
from fedsim_app.io.labels import CodeSet, detect_code_set, get_code_set, to_internal
from fedsim_app.io.layouts import CaseFiles
from fedsim_app.io.nifti import DEFAULT_MAX_VOXELS, read_nifti, recorded_label_codes
from fedsim_app.io.volume import Volume

# Image and label grids may differ by float32 header rounding, not by a voxel.
DEFAULT_AFFINE_TOL_MM = 0.01


def read_label(path: str | Path, label_codes: str | Path | CodeSet | None = None, *,
               max_voxels: int = DEFAULT_MAX_VOXELS, oblique: str = "warn",
               allow_empty: bool = False) -> Volume:
    """Read a label map and map it to internal codes (0..7, uint8).

    Parameters
    ----------
    label_codes : a code set name, a mapping .json, or None: the set FedSim recorded in
        the header when it wrote the file, else detected from the values
        (:func:`~fedsim_app.io.labels.detect_code_set` raises when ambiguous)
    allow_empty : accept a map with background only (otherwise EmptyLabelError)
    """
    return read_label_and_codes(path, label_codes, max_voxels=max_voxels, oblique=oblique,
                                allow_empty=allow_empty)[0]


def read_label_and_codes(path: str | Path, label_codes: str | Path | CodeSet | None = None, *,
                         max_voxels: int = DEFAULT_MAX_VOXELS, oblique: str = "warn",
                         allow_empty: bool = False) -> tuple[Volume, CodeSet]:
    """:func:`read_label` and the code set it used (given or detected), so that results
    can be written back in the file's own codes (:func:`~fedsim_app.io.labels.from_internal`).
    """
    vol = read_nifti(path, kind="label", max_voxels=max_voxels, oblique=oblique)
    values = np.unique(vol.array)
    if not allow_empty and not (values != 0).any():
        raise EmptyLabelError(vol.source_path, "label map holds background only",
                              "remove the case or supply its segmentation")
    codes = label_codes
    if codes is None:
        codes = recorded_label_codes(path) or detect_code_set(values, path=path)
    codes = get_code_set(codes)
    return vol.with_array(to_internal(vol.array, codes, path=path)), codes


def grid_distance_mm(a: Volume, b: Volume) -> float:
    """Largest world distance (mm, per axis) between matching corner voxels of two grids."""
    ga, gb = a.grid, b.grid
    d0 = np.abs(np.asarray(ga.origin_mm) - np.asarray(gb.origin_mm))
    far = np.asarray(ga.shape[::-1]) - 1  # (x, y, z) index of the far corner
    d1 = np.abs(ga.index_to_world(far[::-1]) - gb.index_to_world(far[::-1]))
    return float(max(d0.max(), d1.max()))


def check_pair(image: Volume, label: Volume, *, affine_tol_mm: float = DEFAULT_AFFINE_TOL_MM
               ) -> None:
    """Raise when a label does not lie voxel for voxel on its image's grid.

    Both volumes are canonical, so an LAS label over an RAS image of the same world grid
    passes.
    """
    where = label.source_path
    if image.shape != label.shape:
        raise ShapeMismatchError(where, f"label shape {label.shape} differs from the image "
                                 f"shape {image.shape} ({image.source_path})",
                                 "resample the label onto the image grid (nearest)")
    dist = grid_distance_mm(image, label)
    if dist > affine_tol_mm:
        raise AffineMismatchError(where, f"label grid is {dist:.3g} mm away from the image "
                                  f"grid ({image.source_path}; tolerance {affine_tol_mm} mm)",
                                  "copy the image affine into the label header if the voxels "
                                  "do correspond, otherwise resample the label")


def load_case(case: CaseFiles, label_codes: str | Path | CodeSet | None = None, *,
              max_voxels: int = DEFAULT_MAX_VOXELS, oblique: str = "warn",
              affine_tol_mm: float = DEFAULT_AFFINE_TOL_MM) -> tuple[Volume, Volume | None]:
    """Read a case: canonical float32 image and internal-coded label (None if unlabelled).

    Raises
    ------
    DataError subclasses naming the offending file.
    """
    if case.image is None:
        raise MissingImageError(case.label, "label has no image", "add the image")
    image = read_nifti(case.image, kind="image", max_voxels=max_voxels, oblique=oblique)
    if case.label is None:
        return image, None
    codes = None if label_codes is None else get_code_set(label_codes)
    label = read_label(case.label, codes, max_voxels=max_voxels, oblique=oblique)
    check_pair(image, label, affine_tol_mm=affine_tol_mm)
    return image, label
