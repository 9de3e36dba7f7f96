"""napari NIfTI reader/writers: spacing, orientation and label codes survive a round trip."""

import nibabel as nib
import numpy as np
import pytest

from fedsim_napari import nifti_io


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _las_affine(spacing=(0.8, 0.7, 1.5)):
    aff = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    aff[:3, 3] = (30.0, -20.0, 10.0)
    return aff


def test_reader_claims_only_nifti(tmp_path):
    assert nifti_io.get_reader(str(tmp_path / "a.nii.gz")) is nifti_io.read_layers
    assert nifti_io.get_reader(str(tmp_path / "a.tif")) is None


def test_image_layer_in_mm(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(0, 200, (10, 12, 8)).astype(np.float32)  # (i, j, k) in file order
    path = _save(tmp_path / "ct.nii.gz", data, _las_affine())
    arr, kwargs, kind = nifti_io.layer_data_from_file(path)
    assert kind == "image"
    assert arr.shape == (8, 12, 10)  # canonical (z, y, x)
    np.testing.assert_allclose(kwargs["scale"], (1.5, 0.7, 0.8))
    assert kwargs["metadata"]["fedsim"]["orientation"] == "LAS"
    # first canonical x voxel is the file's last i voxel (L → R flip)
    np.testing.assert_allclose(arr[:, :, 0], data[-1].T)


def test_ct_in_hu_opens_in_fedsims_ct_window(tmp_path):
    from fedsim_app.ctsim.window import CT_WINDOW_HU

    rng = np.random.default_rng(1)
    ct = np.where(rng.random((16, 16, 16)) < 0.3, -1000.0, 40.0).astype(np.float32)
    _, kwargs, _ = nifti_io.layer_data_from_file(_save(tmp_path / "ct.nii.gz", ct, np.eye(4)))
    assert kwargs["contrast_limits"] == CT_WINDOW_HU
    mr = rng.uniform(0, 800, (16, 16, 16)).astype(np.float32)  # not HU: its own range
    _, kwargs, _ = nifti_io.layer_data_from_file(_save(tmp_path / "mr.nii.gz", mr, np.eye(4)))
    assert kwargs["contrast_limits"][0] >= 0 and kwargs["contrast_limits"][1] <= 800


def test_mmwhs_labels_open_as_internal_and_write_back_as_mmwhs(tmp_path):
    lab = np.zeros((10, 12, 8), np.int16)
    lab[2:5, 3:7, 2:6] = 500
    lab[5:8, 3:7, 2:6] = 205
    lab[1, 1, 1] = 421  # MM-WHS's second LA code maps to 420
    path = _save(tmp_path / "case_label.nii.gz", lab, _las_affine())
    arr, kwargs, kind = nifti_io.layer_data_from_file(path)
    assert kind == "labels"
    assert set(np.unique(arr)) == {0, 1, 2, 4}
    assert kwargs["metadata"]["fedsim"]["label_codes"] == "mmwhs"
    out = nifti_io.write_labels(str(tmp_path / "back.nii.gz"), arr, kwargs)[0]
    back = nib.load(out)
    assert nib.aff2axcodes(back.affine) == ("L", "A", "S")
    np.testing.assert_allclose(back.affine, _las_affine(), atol=1e-5)
    expected = np.where(lab == 421, 420, lab)
    np.testing.assert_array_equal(np.asarray(back.dataobj), expected)


def test_image_round_trip_through_writer(tmp_path):
    data = np.arange(6 * 7 * 5, dtype=np.float32).reshape(6, 7, 5) * 1.5
    aff = np.diag([0.5, 0.6, 2.0, 1.0])
    aff[:3, 3] = (-10.0, 5.0, 3.0)
    path = _save(tmp_path / "img.nii.gz", data, aff)
    arr, kwargs, _ = nifti_io.layer_data_from_file(path)
    out = nifti_io.write_image(str(tmp_path / "copy"), arr, kwargs)[0]
    assert out.endswith(".nii.gz")
    back = nib.load(out)
    np.testing.assert_allclose(back.affine, aff, atol=1e-5)
    np.testing.assert_allclose(np.asarray(back.dataobj), data)


def test_bad_file_becomes_notification_not_traceback(tmp_path, monkeypatch):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 this is not really gzip")
    shown = []
    import napari.utils.notifications as notes

    monkeypatch.setattr(notes, "show_error", shown.append)
    assert nifti_io.read_layers(str(bad)) == [(None,)]
    assert len(shown) == 1 and "broken.nii.gz" in shown[0]


@pytest.mark.gui
def test_viewer_open_uses_fedsim_reader(make_napari_viewer, tmp_path):
    lab = np.zeros((6, 6, 6), np.int16)
    lab[1:4, 1:4, 1:4] = 820
    path = _save(tmp_path / "aorta.nii.gz", lab, np.diag([1.2, 1.2, 1.2, 1.0]))
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="fedsim")
    assert layers[0].__class__.__name__ == "Labels"
    assert set(np.unique(layers[0].data)) == {0, 6}
    np.testing.assert_allclose(layers[0].scale, (1.2, 1.2, 1.2))


def test_fedsim_consecutive_labels_open_in_internal_codes(tmp_path):
    """Values 1..7 fit several code sets; the header FedSim wrote says which (issue 16)."""
    from fedsim_app.io import Grid, Volume, from_internal, write_nifti

    internal = np.zeros((6, 7, 8), np.uint8)
    for code in range(1, 8):
        internal[0, 0, code] = code
    vol = Volume(from_internal(internal, "mmwhs-consecutive"), Grid((6, 7, 8), (1.0,) * 3,
                 (0.0,) * 3), kind="label")
    path = write_nifti(vol, tmp_path / "case.nii.gz", label_codes="mmwhs-consecutive")
    data, kwargs, kind = nifti_io.layer_data_from_file(path)
    assert kind == "labels"
    np.testing.assert_array_equal(data, internal)
    assert kwargs["metadata"]["fedsim"]["label_codes"] == "mmwhs-consecutive"
