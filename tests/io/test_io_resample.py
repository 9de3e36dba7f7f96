"""Resampling and heart cropping: volumes, codes and world positions preserved."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim_app.io import (
    EmptyLabelError,
    Volume,
    crop_to_heart,
    foreground_box,
    preprocess_case,
    resample,
    target_grid,
)
from fedsim_app.io.grid import Grid


def sphere(shape=(40, 40, 40), spacing=1.0, radius_mm=10.0, center_mm=(3.2, -2.1, 0.7)):
    grid = Grid.centered(shape, spacing, (0.0, 0.0, 0.0))
    z, y, x = np.meshgrid(*grid.axis_centers(), indexing="ij")
    cx, cy, cz = center_mm
    inside = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm**2
    return grid, inside


def centroid_mm(vol: Volume, mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask).mean(axis=0)
    return vol.grid.index_to_world(idx)


@pytest.mark.parametrize("spacing", [1.5, (2.0, 1.25, 1.5), 0.75])
def test_sphere_label_volume_and_centre_preserved(spacing):
    grid, inside = sphere()
    label = Volume(inside.astype(np.uint8) * 3, grid, kind="label")
    out = resample(label, spacing_mm=spacing)
    assert out.array.dtype == np.uint8
    assert set(np.unique(out.array)) == {0, 3}  # nearest: no mixed codes
    exact = 4.0 / 3.0 * np.pi * 10.0**3
    vol = (out.array == 3).sum() * np.prod(out.grid.spacing_mm)
    assert vol == pytest.approx(exact, rel=0.05)
    # nearest may pick either neighbour where an output centre falls halfway between two
    # input centres (2 mm over 1 mm does so on every plane): up to half an input voxel
    np.testing.assert_allclose(centroid_mm(out, out.array == 3), [3.2, -2.1, 0.7], atol=0.55)


def test_sphere_image_mass_preserved_by_linear():
    grid, inside = sphere()
    image = Volume(np.where(inside, 100.0, 0.0).astype(np.float32), grid)
    out = resample(image, spacing_mm=1.5)
    assert out.array.dtype == np.float32
    mass_in = image.array.sum() * np.prod(grid.spacing_mm)
    mass_out = out.array.sum() * np.prod(out.grid.spacing_mm)
    assert mass_out == pytest.approx(mass_in, rel=0.03)
    assert out.array.min() >= 0.0 and out.array.max() <= 100.0
    # linear interpolation creates intermediate values at the boundary
    assert ((out.array > 1) & (out.array < 99)).any()


def test_identity_spacing_is_exact():
    grid, inside = sphere((10, 12, 14))
    image = Volume(np.random.default_rng(1).normal(size=grid.shape).astype(np.float32), grid)
    out = resample(image, spacing_mm=1.0)
    assert out.grid == grid
    np.testing.assert_allclose(out.array, image.array, atol=1e-5)


def test_target_shape_and_padding_fill():
    grid = Grid((10, 10, 10), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    image = Volume(np.full(grid.shape, 50.0, np.float32), grid)
    g = target_grid(grid, shape=(5, 4, 20))
    np.testing.assert_allclose(g.spacing_mm, (4.0, 5.0, 1.0))
    np.testing.assert_allclose(np.asarray(g.extent_mm), grid.extent_mm)
    # both given: 30 voxels of 1 mm around a 20 mm field of view → 5 mm of padding each side
    out = resample(image, spacing_mm=1.0, shape=(30, 30, 30), fill_value=-1000.0)
    assert out.shape == (30, 30, 30)
    np.testing.assert_array_equal(out.array[15, 15, :5], -1000.0)
    np.testing.assert_array_equal(out.array[15, 15, 5:25], 50.0)


def test_crop_to_heart_with_margin_keeps_world_positions():
    grid = Grid((20, 30, 40), (2.0, 1.0, 0.5), (-5.0, 7.0, 11.0))
    lab = np.zeros(grid.shape, np.uint8)
    lab[8:11, 10:16, 20:25] = 4
    img_arr = np.random.default_rng(2).normal(size=grid.shape).astype(np.float32)
    image, label = Volume(img_arr, grid), Volume(lab, grid, kind="label")
    margin = 3.0
    box = foreground_box(label, margin)
    # margin in voxels: ceil(3 / spacing) = 2 (z), 3 (y), 6 (x), clipped to the volume
    assert box == (slice(6, 13), slice(7, 19), slice(14, 31))
    ci, cl = crop_to_heart(image, label, margin)
    assert ci.shape == cl.shape == (7, 12, 17)
    np.testing.assert_array_equal(ci.array, img_arr[box])
    assert (cl.array == 4).sum() == (lab == 4).sum()
    # voxel (0,0,0) of the crop is at the world position of voxel (6,7,14) of the original
    np.testing.assert_allclose(ci.grid.index_to_world([0, 0, 0]), grid.index_to_world([6, 7, 14]))


def test_crop_clips_to_volume_and_refuses_empty_label():
    grid = Grid((8, 8, 8), (1.0, 1.0, 1.0))
    lab = np.zeros(grid.shape, np.uint8)
    lab[0, 0, 0] = 1
    assert foreground_box(Volume(lab, grid, kind="label"), 50.0) == (slice(0, 8),) * 3
    with pytest.raises(EmptyLabelError):
        foreground_box(Volume(np.zeros(grid.shape, np.uint8), grid, kind="label"), 5.0)


def test_preprocess_case_crops_then_resamples():
    grid, inside = sphere((40, 40, 40), 1.0, 8.0)
    image = Volume(np.where(inside, 300.0, -1000.0).astype(np.float32), grid)
    label = Volume(inside.astype(np.uint8), grid, kind="label")
    pi, pl = preprocess_case(image, label, spacing_mm=1.5, margin_mm=5.0)
    assert pi.grid == pl.grid
    np.testing.assert_allclose(pi.grid.spacing_mm, 1.5)
    assert max(pi.grid.extent_mm) <= 2 * (8 + 5) + 3  # cropped, not the 40 mm input
    assert (pl.array == 1).sum() * 1.5**3 == pytest.approx(4 / 3 * np.pi * 8**3, rel=0.08)


@pytest.mark.slow
def test_ct_sized_volume_resamples_to_expected_grid():
    # speed is measured in benchmarks/io_resample.py, not asserted here
    # 512x512x250 at 0.4 x 0.4 x 0.6 mm (z 0.6) → 1.5 mm, image and label
    shape = (250, 512, 512)
    grid = Grid(shape, (0.6, 0.4, 0.4))
    image = Volume(np.zeros(shape, np.float32), grid)
    label = Volume(np.zeros(shape, np.uint8), grid, kind="label")
    out_i = resample(image, spacing_mm=1.5)
    out_l = resample(label, spacing_mm=1.5)
    assert out_i.shape == out_l.shape == (100, 137, 137)
    assert out_i.spacing_mm == out_l.spacing_mm == (1.5, 1.5, 1.5)


def test_fit_to_frame_scales_the_field_of_view_onto_the_frame():
    from fedsim_app.io import fit_to_frame, resample_to_grid

    # a small scan (a child's: 20 × 1 mm about (7, -3, 5)) holding a 5 mm-radius sphere
    grid, inside = sphere(shape=(20, 20, 20), spacing=1.0, radius_mm=5.0, center_mm=(0, 0, 0))
    grid = Grid(grid.shape, grid.spacing_mm, tuple(np.add(grid.origin_mm, (7.0, -3.0, 5.0))))
    label = Volume(inside.astype(np.uint8), grid, kind="label")
    frame = Grid.centered(40, 2.0, (1.0, 2.0, 3.0))  # 80 mm about (1, 2, 3)
    fitted = fit_to_frame(label, frame)
    assert fitted.array is label.array  # moved and scaled, not resampled
    assert fitted.grid.spacing_mm == (4.0, 4.0, 4.0)
    assert np.allclose(fitted.grid.extent_mm, frame.extent_mm)
    centre = fitted.grid.index_to_world(np.array([9.5, 9.5, 9.5]))
    assert np.allclose(centre, (1.0, 2.0, 3.0))
    assert np.allclose(fitted.grid.center_mm, frame.center_mm)
    assert np.allclose(grid.center_mm, (7.0, -3.0, 5.0))
    # on the frame the sphere has 4× the radius: 20 mm, i.e. 10 voxels, about the centre
    out = resample_to_grid(fitted, frame).array
    vol_mm3 = out.sum() * 8.0
    assert vol_mm3 == pytest.approx(4 / 3 * np.pi * 20.0**3, rel=0.08)
    assert np.allclose(frame.index_to_world(np.argwhere(out).mean(0)), (1.0, 2.0, 3.0), atol=1.0)


def test_fit_to_frame_uses_the_longest_extent_and_keeps_the_aspect():
    from fedsim_app.io import fit_to_frame

    vol = Volume(np.zeros((10, 20, 40), np.float32), Grid.centered((10, 20, 40), (2.0, 1.0, 0.5)))
    fitted = fit_to_frame(vol, Grid.centered(32, 5.0))  # 160 mm; the scan is 20 mm every way
    assert fitted.grid.spacing_mm == pytest.approx((16.0, 8.0, 4.0))
