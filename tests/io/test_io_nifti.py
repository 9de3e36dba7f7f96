"""NIfTI read/write: round trips, orientations, and every bad file named."""

from __future__ import annotations

import gzip
import warnings

import nibabel as nib
import numpy as np
import pytest
from io_testdata import dim_patch, pixdim_patch, ramp_image, write_raw_nii

from fedsim_app.io import (
    CorruptFileError,
    DimensionError,
    LabelValueError,
    MissingFileError,
    NonFiniteError,
    NotNiftiError,
    ObliqueAffineWarning,
    ObliqueError,
    SpacingError,
    TooLargeError,
    UnwritableError,
    Volume,
    read_nifti,
    write_nifti,
)
from fedsim_app.io.grid import Grid


def assert_same_grid(a: Grid, b: Grid) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing_mm, b.spacing_mm, rtol=1e-6)
    np.testing.assert_allclose(a.origin_mm, b.origin_mm, atol=1e-4)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_round_trip_image_and_affine(tmp_path, image, suffix):
    path = write_nifti(image, tmp_path / f"a{suffix}")
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, image.array)
    assert_same_grid(back.grid, image.grid)
    np.testing.assert_allclose(nib.load(path).affine, image.grid.affine, atol=1e-5)
    assert back.orientation == "RAS" and back.source_path == path


def test_round_trip_label_keeps_integer_codes(tmp_path, label):
    codes = label.with_array(np.where(label.array > 0, label.array.astype(np.int16) + 500, 0))
    back = read_nifti(write_nifti(codes, tmp_path / "l.nii.gz"), kind="label")
    assert np.issubdtype(back.array.dtype, np.integer)
    np.testing.assert_array_equal(back.array, codes.array)


@pytest.mark.parametrize("codes", ["LAS", "LPS", "LPI", "RPI", "ASL", "PIR", "SLP", "IRA"])
def test_any_axis_aligned_orientation_reads_like_ras(tmp_path, image, codes):
    ras = read_nifti(write_nifti(image, tmp_path / "ras.nii.gz"))
    other_path = write_nifti(image, tmp_path / f"{codes}.nii.gz", orientation=codes)
    assert "".join(nib.aff2axcodes(nib.load(other_path).affine)) == codes
    other = read_nifti(other_path)
    np.testing.assert_array_equal(other.array, ras.array)
    assert_same_grid(other.grid, ras.grid)
    assert other.orientation == codes


def test_las_file_made_by_hand_reads_like_ras(tmp_path, image):
    # written without FedSim's writer: flip x in the data and in the affine
    data_xyz = image.array.transpose(2, 1, 0)
    aff = image.grid.affine.copy()
    nx = image.shape[2]
    aff[0, 0] = -aff[0, 0]
    aff[0, 3] = image.grid.origin_mm[0] + (nx - 1) * image.grid.spacing_mm[2]
    nib.save(nib.Nifti1Image(data_xyz[::-1].copy(), aff), tmp_path / "las.nii.gz")
    nib.save(nib.Nifti1Image(data_xyz.copy(), image.grid.affine), tmp_path / "ras.nii.gz")
    las, ras = read_nifti(tmp_path / "las.nii.gz"), read_nifti(tmp_path / "ras.nii.gz")
    assert las.orientation == "LAS" and ras.orientation == "RAS"
    np.testing.assert_array_equal(las.array, ras.array)
    assert_same_grid(las.grid, ras.grid)


def test_write_back_in_original_orientation(tmp_path, image):
    src = read_nifti(write_nifti(image, tmp_path / "in.nii.gz", orientation="PIR"))
    out = write_nifti(src, tmp_path / "out.nii.gz", orientation="original")
    a, b = nib.load(tmp_path / "in.nii.gz"), nib.load(out)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    np.testing.assert_array_equal(a.get_fdata(), b.get_fdata())


def test_oblique_affine_warns_and_reorients_to_closest_axes(tmp_path, image):
    angle = np.radians(10.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1]])
    aff = image.grid.affine.copy()
    aff[:3, :3] = rot @ aff[:3, :3]
    nib.save(nib.Nifti1Image(image.array.transpose(2, 1, 0).copy(), aff), tmp_path / "o.nii.gz")
    with pytest.warns(ObliqueAffineWarning, match="o.nii.gz"):
        vol = read_nifti(tmp_path / "o.nii.gz")
    assert vol.oblique_deg == pytest.approx(10.0, abs=1e-3)
    np.testing.assert_array_equal(vol.array, image.array)
    np.testing.assert_allclose(vol.grid.spacing_mm, image.grid.spacing_mm, rtol=1e-5)
    with pytest.raises(ObliqueError, match="o.nii.gz"):
        read_nifti(tmp_path / "o.nii.gz", oblique="error")


def test_aligned_file_gives_no_warning(tmp_path, image):
    path = write_nifti(image, tmp_path / "a.nii.gz", orientation="LPS")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_nifti(path).oblique_deg == 0.0


def test_trailing_singleton_4d_is_squeezed(tmp_path, image):
    data = image.array.transpose(2, 1, 0)[..., None]
    nib.save(nib.Nifti1Image(data, image.grid.affine), tmp_path / "s.nii.gz")
    np.testing.assert_array_equal(read_nifti(tmp_path / "s.nii.gz").array, image.array)


def test_write_is_atomic_and_leaves_no_temp(tmp_path, image):
    write_nifti(image, tmp_path / "a.nii.gz")
    write_nifti(image.with_array(image.array + 1), tmp_path / "a.nii.gz")  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz"]
    np.testing.assert_array_equal(read_nifti(tmp_path / "a.nii.gz").array, image.array + 1)


# --- bad input: each error class, and the message names the file -----------------------


def raises_naming(cls, path, fn, *args, **kwargs):
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    assert str(path) in str(info.value)
    assert info.value.path == path
    return info.value


def test_truncated_gzip(tmp_path, image):
    path = write_nifti(image, tmp_path / "t.nii.gz")
    data = gzip.compress(gzip.decompress(path.read_bytes()))
    path.write_bytes(data[: len(data) // 2])
    raises_naming(CorruptFileError, path, read_nifti, path)


def test_gzip_cut_inside_header(tmp_path, image):
    path = write_nifti(image, tmp_path / "t.nii.gz")
    path.write_bytes(path.read_bytes()[:20])
    raises_naming(CorruptFileError, path, read_nifti, path)


def test_uncompressed_truncated(tmp_path, image):
    path = write_nifti(image, tmp_path / "t.nii")
    path.write_bytes(path.read_bytes()[:400])
    raises_naming(CorruptFileError, path, read_nifti, path)


def test_gz_name_on_plain_bytes_is_corrupt_gzip(tmp_path):
    path = tmp_path / "plain.nii.gz"
    path.write_bytes(b"x" * 600)
    err = raises_naming(CorruptFileError, path, read_nifti, path)
    assert "gzip" in str(err)


@pytest.mark.parametrize("name", ["text.nii", "text.nii.gz"])
def test_not_a_nifti(tmp_path, name):
    path = tmp_path / name
    payload = b"this is a text file, not an image\n" * 30
    path.write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    raises_naming(NotNiftiError, path, read_nifti, path)


def test_missing_file(tmp_path):
    raises_naming(MissingFileError, tmp_path / "none.nii.gz", read_nifti, tmp_path / "none.nii.gz")


def test_2d_refused(tmp_path):
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.float32), np.eye(4)), path)
    err = raises_naming(DimensionError, path, read_nifti, path)
    assert "2D" in str(err)


def test_4d_refused(tmp_path):
    path = tmp_path / "four.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), path)
    err = raises_naming(DimensionError, path, read_nifti, path)
    assert "4D" in str(err)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_intensities(tmp_path, image, bad):
    arr = image.array.copy()
    arr[2, 3, 4] = bad
    path = write_nifti(image.with_array(arr), tmp_path / "nan.nii.gz")
    err = raises_naming(NonFiniteError, path, read_nifti, path)
    assert "1 voxels" in str(err)


@pytest.mark.parametrize("index,value", [(1, 0.0), (2, -1.5), (3, 0.0)])
def test_zero_or_negative_spacing_from_raw_header(tmp_path, image, index, value):
    path = write_raw_nii(tmp_path / "sp.nii.gz", image, patch=pixdim_patch(index, value))
    assert nib.load(path).header["pixdim"][index] > 0  # nibabel repairs it on load
    raises_naming(SpacingError, path, read_nifti, path)


def test_too_large_refused_from_header_before_allocating(tmp_path):
    small = ramp_image((2, 2, 2))
    path = write_raw_nii(tmp_path / "huge.nii.gz", small, patch=dim_patch((3, 2048, 2048, 300)))
    err = raises_naming(TooLargeError, path, read_nifti, path)
    assert "2048" in str(err)


def test_too_large_limit_is_configurable(tmp_path, image):
    path = write_nifti(image, tmp_path / "a.nii.gz")
    raises_naming(TooLargeError, path, read_nifti, path, max_voxels=100)
    assert read_nifti(path, max_voxels=image.array.size).shape == image.shape


def test_non_integer_label_values(tmp_path, image):
    path = write_nifti(image.with_array(image.array + 0.25), tmp_path / "l.nii.gz")
    raises_naming(LabelValueError, path, read_nifti, path, kind="label")


def test_unwritable_output_folder(tmp_path, image):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    target = blocker / "sub" / "a.nii.gz"
    with pytest.raises(UnwritableError) as info:
        write_nifti(image, target)
    assert str(blocker) in str(info.value)


def test_volume_rejects_mismatched_grid(image):
    with pytest.raises(ValueError, match="does not match"):
        Volume(image.array[:-1], image.grid)


def test_interrupted_write_leaves_old_file_and_no_temp(tmp_path, image, monkeypatch):
    target = write_nifti(image, tmp_path / "a.nii.gz")
    before = target.read_bytes()

    def half_then_crash(img, filename):
        with open(filename, "wb") as f:
            f.write(b"\x1f\x8b partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        write_nifti(image.with_array(image.array * 2), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz"]


def test_scaled_int16_ct_reads_as_float_hu(tmp_path, image):
    stored = np.rint(image.array.transpose(2, 1, 0) * 2).astype(np.int16)
    img = nib.Nifti1Image(stored, image.grid.affine)
    img.header.set_slope_inter(0.5, -1024.0)
    nib.save(img, tmp_path / "ct.nii.gz")
    vol = read_nifti(tmp_path / "ct.nii.gz")
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, np.rint(image.array * 2) * 0.5 - 1024.0)
