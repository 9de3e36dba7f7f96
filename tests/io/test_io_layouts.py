"""Dataset layouts: detection, indexing, loading a case, and pair checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from io_testdata import blob_label, ramp_image

from fedsim_app.io import (
    AffineMismatchError,
    EmptyLabelError,
    LabelCodesError,
    LabelValueError,
    LayoutError,
    MissingFileError,
    MissingImageError,
    ShapeMismatchError,
    Volume,
    detect_layout,
    from_internal,
    index_dataset,
    load_case,
    read_label,
    write_nifti,
)
from fedsim_app.io.grid import Grid


def mmwhs_label(label: Volume) -> Volume:
    return label.with_array(from_internal(label.array, "mmwhs"))


def make_pairs(root, n=2, codes="mmwhs"):
    root.mkdir(parents=True, exist_ok=True)
    image = ramp_image()
    label = blob_label(image)
    for i in range(n):
        write_nifti(image, root / f"ct_{i:03d}_image.nii.gz", orientation="LAS")
        write_nifti(label.with_array(from_internal(label.array, codes)),
                    root / f"ct_{i:03d}_label.nii.gz")
    return image, label


def make_nnunet(root, n=2, with_json=True):
    image = ramp_image()
    label = blob_label(image)
    for i in range(n):
        write_nifti(image, root / "imagesTr" / f"c{i}_0000.nii.gz")
        write_nifti(label, root / "labelsTr" / f"c{i}.nii.gz")
    if with_json:
        (root / "dataset.json").write_text(json.dumps({
            "channel_names": {"0": "CT"}, "labels": {"background": 0, "lv_blood_pool": 1},
            "numTraining": n, "file_ending": ".nii.gz"}))
    return image, label


def make_msd(root, n=2):
    image = ramp_image()
    label = blob_label(image)
    training = []
    for i in range(n):
        write_nifti(image, root / "img" / f"m{i}.nii.gz")
        write_nifti(label, root / "seg" / f"m{i}.nii.gz")
        training.append({"image": f"./img/m{i}.nii.gz", "label": f"./seg/m{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"name": "x", "training": training}))
    return image, label


def test_pairs_layout_read(tmp_path):
    image, label = make_pairs(tmp_path / "ds")
    index = index_dataset(tmp_path / "ds")
    assert index.layout == "pairs" and not index.problems
    assert [c.case_id for c in index.cases] == ["ct_000", "ct_001"]
    img, lab = load_case(index.cases[0])  # mmwhs detected; LAS image reoriented
    np.testing.assert_array_equal(img.array, image.array)
    np.testing.assert_array_equal(lab.array, label.array)
    assert img.orientation == "LAS" and lab.orientation == "RAS"


def test_nnunet_layout_read(tmp_path):
    image, label = make_nnunet(tmp_path)
    index = index_dataset(tmp_path)
    assert index.layout == "nnunet" and not index.problems
    assert [c.case_id for c in index.cases] == ["c0", "c1"]
    img, lab = load_case(index.cases[1], "internal")
    np.testing.assert_array_equal(lab.array, label.array)


def test_nnunet_without_dataset_json_is_still_found(tmp_path):
    make_nnunet(tmp_path, with_json=False)
    assert detect_layout(tmp_path) == "nnunet"


def test_msd_layout_read(tmp_path):
    image, label = make_msd(tmp_path)
    assert detect_layout(tmp_path / "dataset.json") == "msd"
    index = index_dataset(tmp_path)
    assert index.layout == "msd" and [c.case_id for c in index.cases] == ["m0", "m1"]
    img, lab = load_case(index.cases[0], "internal")
    np.testing.assert_array_equal(img.array, image.array)


def test_single_file_layout(tmp_path, image):
    path = write_nifti(image, tmp_path / "one.nii.gz")
    index = index_dataset(path)
    assert index.layout == "file" and index.cases[0].image == path


def test_orphan_label_in_each_layout(tmp_path):
    make_pairs(tmp_path / "p")
    (tmp_path / "p" / "ct_001_image.nii.gz").unlink()
    make_nnunet(tmp_path / "n")
    (tmp_path / "n" / "imagesTr" / "c0_0000.nii.gz").unlink()
    make_msd(tmp_path / "m")
    (tmp_path / "m" / "img" / "m1.nii.gz").unlink()
    for root, name in (("p", "ct_001_label"), ("n", "c0"), ("m", "m1")):
        index = index_dataset(tmp_path / root)
        errs = [p for p in index.problems if isinstance(p, MissingImageError)]
        assert len(errs) == 1 and name in str(errs[0].path), root
        with pytest.raises(MissingImageError):
            index.check()
        orphan = next(c for c in index.cases if c.image is None)
        with pytest.raises(MissingImageError) as info:
            load_case(orphan)
        assert str(orphan.label) in str(info.value)


def test_msd_missing_listed_file(tmp_path):
    make_msd(tmp_path)
    (tmp_path / "seg" / "m0.nii.gz").unlink()
    assert any(isinstance(p, MissingFileError) and "m0" in str(p) for p in
               index_dataset(tmp_path).problems)


def test_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LayoutError) as info:
        detect_layout(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "dataset.json").write_text("{broken")
    with pytest.raises(LayoutError, match="dataset.json"):
        detect_layout(tmp_path)


def test_shape_mismatch_names_label(tmp_path, image, label):
    write_nifti(image, tmp_path / "a_image.nii.gz")
    small = Volume(label.array[:-1].copy(), Grid(label.array[:-1].shape, label.grid.spacing_mm,
                                                 label.grid.origin_mm), kind="label")
    write_nifti(small, tmp_path / "a_label.nii.gz")
    with pytest.raises(ShapeMismatchError) as info:
        load_case(index_dataset(tmp_path).cases[0], "internal")
    assert str(tmp_path / "a_label.nii.gz") in str(info.value)


@pytest.mark.parametrize("shift_mm", [0.5, 5.0])
def test_affine_mismatch_beyond_tolerance(tmp_path, image, label, shift_mm):
    write_nifti(image, tmp_path / "a_image.nii.gz")
    g = label.grid
    moved = Grid(g.shape, g.spacing_mm, (g.origin_mm[0] + shift_mm, *g.origin_mm[1:]))
    write_nifti(label.with_array(label.array, moved), tmp_path / "a_label.nii.gz")
    with pytest.raises(AffineMismatchError) as info:
        load_case(index_dataset(tmp_path).cases[0], "internal")
    assert str(tmp_path / "a_label.nii.gz") in str(info.value)


def test_affine_within_tolerance_and_other_orientation_pass(tmp_path, image, label):
    write_nifti(image, tmp_path / "a_image.nii.gz")
    g = label.grid
    nudged = Grid(g.shape, g.spacing_mm, (g.origin_mm[0] + 1e-4, *g.origin_mm[1:]))
    write_nifti(label.with_array(label.array, nudged), tmp_path / "a_label.nii.gz",
                orientation="LPI")
    img, lab = load_case(index_dataset(tmp_path).cases[0], "internal")
    np.testing.assert_array_equal(lab.array, label.array)


def test_label_values_outside_code_set(tmp_path, label):
    path = write_nifti(label.with_array(np.where(label.array == 3, 9, label.array)),
                       tmp_path / "l.nii.gz")
    with pytest.raises(LabelValueError) as info:
        read_label(path, "internal")
    assert str(path) in str(info.value) and "9" in str(info.value)


def test_empty_label_map(tmp_path, label):
    path = write_nifti(label.with_array(np.zeros_like(label.array)), tmp_path / "l.nii.gz")
    with pytest.raises(EmptyLabelError) as info:
        read_label(path, "internal")
    assert str(path) in str(info.value)


def test_label_autodetect_and_ambiguity(tmp_path, label):
    mm = write_nifti(mmwhs_label(label), tmp_path / "mm.nii.gz")
    np.testing.assert_array_equal(read_label(mm).array, label.array)
    small = write_nifti(label, tmp_path / "small.nii.gz")
    with pytest.raises(LabelCodesError) as info:
        read_label(small)
    assert "--label-codes" in str(info.value) and str(small) in str(info.value)


def test_nnunet_labels_with_internal_names_give_the_code_set(tmp_path):
    image, label = make_nnunet(tmp_path, n=1, with_json=False)
    names = {"background": 0, "lv_myocardium": 1, "la": 2, "lv_blood_pool": 3, "ra": 4,
             "rv": 5, "aorta": 6, "pulmonary_artery": 7}  # mmwhs-consecutive, by name
    (tmp_path / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": names, "numTraining": 1,
        "file_ending": ".nii.gz"}))
    write_nifti(label.with_array(from_internal(label.array, "mmwhs-consecutive")),
                tmp_path / "labelsTr" / "c0.nii.gz")
    index = index_dataset(tmp_path)
    _, lab = load_case(index.cases[0], index.label_codes)
    np.testing.assert_array_equal(lab.array, label.array)


def test_nnunet_numtraining_mismatch_and_missing_keys(tmp_path):
    make_nnunet(tmp_path, n=2, with_json=False)
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"},
                                                       "numTraining": 5}))
    problems = index_dataset(tmp_path).problems
    text = " ".join(str(p) for p in problems)
    assert "numTraining is 5" in text and "'labels'" in text and "'file_ending'" in text
    assert all(isinstance(p, LayoutError) for p in problems)
