"""Resampling to a target spacing or size, and cropping around the heart.

Images are interpolated linearly, labels by nearest neighbour (codes are never mixed).
Grids stay axis-aligned, so the resampling is separable per axis and
``scipy.ndimage.affine_transform`` with a diagonal matrix takes its fast zoom path: a
512x512x250 CT to 1.5 mm takes well under a second per volume on one core.
"""

from __future__ import annotations

import math

import numpy as np

from fedsim_app.io.errors import EmptyLabelError
from fedsim_app.io.grid import Grid
from fedsim_app.io.volume import Volume


def _triple(value, name: str) -> tuple[float, float, float]:
    out = (float(value),) * 3 if np.isscalar(value) else tuple(float(v) for v in value)
    if len(out) != 3:
        raise ValueError(f"{name} must be one value or three (z, y, x), got {value!r}")
    return out


def target_grid(grid: Grid, spacing_mm=None, shape=None) -> Grid:
    """The grid with the given spacing and/or shape, centred on ``grid``'s centre.

    With only ``spacing_mm`` the field of view is kept (shape rounded); with only
    ``shape`` the spacing stretches to keep the field of view; with both the field of view
    is cropped or padded about the centre.
    """
    if spacing_mm is None and shape is None:
        raise ValueError("give spacing_mm, shape, or both")
    extent = np.asarray(grid.extent_mm)  # (z, y, x) edge to edge
    if spacing_mm is not None:
        new_sp = np.asarray(_triple(spacing_mm, "spacing_mm"))
        if (new_sp <= 0).any():
            raise ValueError(f"spacing_mm must be positive, got {spacing_mm!r}")
    if shape is None:
        new_shape = np.maximum(1, np.rint(extent / new_sp)).astype(int)
    else:
        new_shape = np.asarray([int(s) for s in _triple(shape, "shape")])
        if spacing_mm is None:
            new_sp = extent / new_shape
    center_zyx = np.asarray(grid.origin_mm)[::-1] + (np.asarray(grid.shape) - 1) * np.asarray(
        grid.spacing_mm) / 2.0
    return Grid.centered(tuple(new_shape), tuple(new_sp), tuple(center_zyx[::-1]))


def resample_to_grid(volume: Volume, grid: Grid, *, fill_value: float | None = None,
                     antialias: bool = False) -> Volume:
    """Resample ``volume`` onto another canonical ``grid``.

    Parameters
    ----------
    volume : image (linear) or label (nearest) volume
    grid : target grid, axis-aligned like every canonical grid
    fill_value : value outside the source field of view (default: the image minimum,
        i.e. air for CT; 0 for labels)
    antialias : Gaussian prefilter of images before downsampling (sigma = (factor-1)/2
        voxels per axis, as scikit-image does); off by default like nnU-Net's resampling
    """
    from scipy import ndimage

    src = volume.grid
    is_label = volume.kind == "label"
    scale = np.asarray(grid.spacing_mm) / np.asarray(src.spacing_mm)  # (z, y, x)
    # output index 0 sits at world origin_out; in source index units:
    offset = (np.asarray(grid.origin_mm) - np.asarray(src.origin_mm))[::-1] / np.asarray(
        src.spacing_mm)
    data = volume.array
    if is_label:
        fill = 0 if fill_value is None else fill_value
    else:
        data = data.astype(np.float32, copy=False)
        fill = float(data.min()) if fill_value is None else float(fill_value)
        if antialias and (scale > 1).any():
            sigma = np.maximum(0.0, (scale - 1.0) / 2.0)
            data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    # 'nearest' mode so output voxels within half a voxel of the source border copy the
    # border; voxels truly outside the source field of view are set to the fill below.
    out = ndimage.affine_transform(data, scale, offset=offset, output_shape=grid.shape,
                                   order=0 if is_label else 1, mode="nearest",
                                   prefilter=False)
    for axis in range(3):
        idx = offset[axis] + scale[axis] * np.arange(grid.shape[axis])
        outside = (idx < -0.5) | (idx > src.shape[axis] - 0.5)
        if outside.any():
            sl = [slice(None)] * 3
            sl[axis] = outside
            out[tuple(sl)] = fill
    return volume.with_array(out, grid)


def fit_to_frame(volume: Volume, frame: Grid) -> Volume:
    """``volume`` moved and scaled onto ``frame`` (its array untouched): the cube over the
    volume's longest extent, about its centre, is made to cover ``frame``'s field of view.

    What the paper does when it resizes every scan to 128³: a child's chest, scanned over
    a small field of view, then fills the frame as an adult's does. Resample the result
    onto ``frame`` to get the array.

    >>> v = Volume(np.zeros((4, 4, 2), np.float32), Grid.centered((4, 4, 2), 1.0, (5, 5, 5)))
    >>> fit_to_frame(v, Grid.centered(8, 1.0)).grid.spacing_mm
    (2.0, 2.0, 2.0)
    """
    src = volume.grid
    k = max(frame.extent_mm) / max(src.extent_mm)
    origin = frame.center_mm + (np.asarray(src.origin_mm) - src.center_mm) * k
    grid = Grid(src.shape, tuple(s * k for s in src.spacing_mm), tuple(float(o) for o in origin))
    return volume.with_array(volume.array, grid)


def resample(volume: Volume, spacing_mm=None, shape=None, *, fill_value: float | None = None,
             antialias: bool = False) -> Volume:
    """Resample to a target spacing (mm, ``(z, y, x)`` or one value) and/or shape.

    Examples
    --------
    >>> ct_15 = resample(ct, spacing_mm=1.5)          # doctest: +SKIP
    >>> lab_15 = resample(label, spacing_mm=1.5)      # nearest, codes kept  # doctest: +SKIP
    """
    grid = target_grid(volume.grid, spacing_mm, shape)
    return resample_to_grid(volume, grid, fill_value=fill_value, antialias=antialias)


def foreground_box(label: Volume, margin_mm: float = 0.0) -> tuple[slice, slice, slice]:
    """Index slices ``(z, y, x)`` of the labelled voxels' bounding box plus ``margin_mm``.

    Raises
    ------
    EmptyLabelError
        When the label map holds background only.
    """
    nz = np.nonzero(label.array)
    if nz[0].size == 0:
        raise EmptyLabelError(label.source_path, "label map holds background only",
                              "check the file; a heart crop needs labelled voxels")
    out = []
    for axis, ix in enumerate(nz):
        pad = int(math.ceil(margin_mm / label.grid.spacing_mm[axis] - 1e-9))
        lo = max(0, int(ix.min()) - pad)
        hi = min(label.grid.shape[axis], int(ix.max()) + 1 + pad)
        out.append(slice(lo, hi))
    return tuple(out)


def crop(volume: Volume, box: tuple[slice, slice, slice]) -> Volume:
    """The sub-volume ``volume.array[box]`` with its grid origin moved accordingly."""
    start = [s.start or 0 for s in box]
    array = np.ascontiguousarray(volume.array[box])
    origin = volume.grid.index_to_world(np.asarray(start, dtype=float))
    return volume.with_array(array, Grid(array.shape, volume.grid.spacing_mm, tuple(origin)))


def crop_to_heart(image: Volume, label: Volume, margin_mm: float = 10.0
                  ) -> tuple[Volume, Volume]:
    """Crop image and label to the labelled bounding box plus ``margin_mm`` on every side."""
    if image.grid.shape != label.grid.shape:
        raise ValueError("image and label must share a grid; check them with load_case first")
    box = foreground_box(label, margin_mm)
    return crop(image, box), crop(label, box)


def preprocess_case(image: Volume, label: Volume, *, spacing_mm=1.5,
                    margin_mm: float | None = 10.0) -> tuple[Volume, Volume]:
    """The usual whole-heart preprocessing: crop around the heart, then resample.

    Cropping first keeps the resampling cheap; ``margin_mm=None`` skips the crop.
    """
    if margin_mm is not None:
        image, label = crop_to_heart(image, label, margin_mm)
    return resample(image, spacing_mm), resample(label, spacing_mm)
