"""DatasetWriter: nnU-Net v2 raw layout, MONAI-readable dataset.json, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from io_testdata import blob_label, ramp_image

from fedsim_app.io import (
    DatasetWriter,
    ShapeMismatchError,
    UnwritableError,
    Volume,
    index_dataset,
    load_case,
    read_nifti,
)
from fedsim_app.io.grid import Grid


@pytest.fixture
def pair():
    image = ramp_image()
    return image, blob_label(image)


def write_three(root, pair):
    image, label = pair
    w = DatasetWriter(root, "FedSimSiteA", label_codes="internal")
    for i in range(3):
        w.add_case(f"case_{i:03d}", image, label, record={"seed": i})
    return w.finalize()


@pytest.mark.slow  # importing MONAI takes a few seconds
def test_written_dataset_reads_with_monai(tmp_path, pair):
    from monai.data import load_decathlon_datalist

    ds_json = write_three(tmp_path / "out", pair)
    items = load_decathlon_datalist(str(ds_json), True, "training")
    assert len(items) == 3
    assert items[0]["image"] == str(tmp_path / "out" / "imagesTr" / "case_000_0000.nii.gz")
    assert items[0]["label"] == str(tmp_path / "out" / "labelsTr" / "case_000.nii.gz")
    assert all(Path(item[key]).is_file() for item in items for key in ("image", "label"))


def test_written_dataset_reads_back(tmp_path, pair):
    image, label = pair
    ds_json = write_three(tmp_path / "out", pair)
    data = json.loads(ds_json.read_text())
    for key in ("channel_names", "labels", "numTraining", "file_ending", "name",
                "description", "modality", "tensorImageSize", "training"):
        assert key in data, key
    assert data["numTraining"] == 3 and data["file_ending"] == ".nii.gz"
    assert data["labels"]["background"] == 0 and data["labels"]["pulmonary_artery"] == 7
    assert sorted(data["labels"].values()) == list(range(8))  # nnU-Net: consecutive

    index = index_dataset(tmp_path / "out")
    assert index.layout == "nnunet" and not index.problems and index.label_codes == "internal"
    img, lab = load_case(index.cases[2], index.label_codes)
    np.testing.assert_array_equal(img.array, image.array)
    np.testing.assert_array_equal(lab.array, label.array)
    record = json.loads((tmp_path / "out" / "fedsim" / "case_002.json").read_text())
    assert record["record"] == {"seed": 2}


def test_labels_written_in_the_chosen_codes(tmp_path, pair):
    image, label = pair
    with pytest.warns(UserWarning, match="not consecutive"):
        w = DatasetWriter(tmp_path, "mm", label_codes="mmwhs")
    w.add_case("a", image, label)
    w.finalize()
    raw = read_nifti(tmp_path / "labelsTr" / "a.nii.gz", kind="label").array
    assert set(np.unique(raw)) == {0, 205, 420, 500, 550, 600, 820, 850}
    assert json.loads((tmp_path / "dataset.json").read_text())["labels"]["lv_blood_pool"] == 500
    _, lab = load_case(index_dataset(tmp_path).cases[0])  # codes from dataset.json
    np.testing.assert_array_equal(lab.array, label.array)


def test_resume_after_interruption(tmp_path, pair):
    image, label = pair
    w = DatasetWriter(tmp_path, "resume")
    w.add_case("a", image, label)
    # an interrupted case: image written, label and record not
    (tmp_path / "imagesTr").mkdir(exist_ok=True)
    (tmp_path / "imagesTr" / "b_0000.nii.gz").write_bytes(
        (tmp_path / "imagesTr" / "a_0000.nii.gz").read_bytes())
    w2 = DatasetWriter(tmp_path, "resume")  # a new run
    assert w2.has_case("a") and not w2.has_case("b")
    w2.add_case("b", image, label)
    w2.add_case("c", image, label)
    data = json.loads(w2.finalize().read_text())
    assert data["numTraining"] == 3
    assert [t["label"] for t in data["training"]] == [f"./labelsTr/{c}.nii.gz" for c in "abc"]
    hidden = [p for p in tmp_path.rglob(".*")]
    assert hidden == []  # no temporary files left behind


def test_resume_removes_half_files_of_a_killed_run(tmp_path, pair):
    import os
    import subprocess
    import sys

    from fedsim_app.io.atomic import temp_sibling

    image, label = pair
    DatasetWriter(tmp_path, "killed").add_case("a", image, label)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # what kill -9 leaves mid-write: a hidden temporary whose name ends like the data's
    label_tmp = temp_sibling(tmp_path / "labelsTr" / "b.nii.gz")
    stale = label_tmp.with_name(label_tmp.name.replace(f".{os.getpid()}.", f".{dead}."))
    stale.write_bytes(b"half a file")
    record_tmp = tmp_path / "fedsim" / "meshes" / "b" / f".LV.ply.{dead}.tmp.ply"
    record_tmp.parent.mkdir(parents=True)
    record_tmp.write_bytes(b"ply")
    live = temp_sibling(tmp_path / "imagesTr" / "c_0000.nii.gz")  # this process: alive
    live.write_bytes(b"being written")
    assert stale.name.endswith(".nii.gz") and stale.name.startswith(".b.nii.gz.")
    w = DatasetWriter(tmp_path, "killed")  # the resumed run
    assert not stale.exists() and not record_tmp.exists() and live.exists()
    assert w.has_case("a")


def test_mismatched_pair_refused_before_writing(tmp_path, pair):
    image, label = pair
    other = Volume(label.array[1:].copy(), Grid(label.array[1:].shape, (1.0, 1.0, 1.0)),
                   kind="label")
    w = DatasetWriter(tmp_path, "x")
    with pytest.raises(ShapeMismatchError):
        w.add_case("bad", image, other)
    assert not w.has_case("bad") and not (tmp_path / "imagesTr").exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UnwritableError) as info:
        DatasetWriter(blocker / "ds", "x")
    assert str(blocker / "ds") in str(info.value)


def test_custom_mapping_travels_in_dataset_json(tmp_path, pair):
    image, label = pair
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({str(10 * i): i for i in range(8)}))
    out = tmp_path / "ds"
    with pytest.warns(UserWarning, match="not consecutive"):
        w = DatasetWriter(out, "custom", label_codes=mapping)
    w.add_case("a", image, label)
    w.finalize()
    mapping.unlink()  # the dataset must not depend on the mapping file
    raw = read_nifti(out / "labelsTr" / "a.nii.gz", kind="label").array
    np.testing.assert_array_equal(raw, label.array.astype(int) * 10)
    index = index_dataset(out)
    _, lab = load_case(index.cases[0], index.label_codes)
    np.testing.assert_array_equal(lab.array, label.array)


def test_overwriting_a_case_rewrites_it(tmp_path, pair):
    image, label = pair
    w = DatasetWriter(tmp_path, "x")
    w.add_case("a", image, label, record={"v": 1})
    w.add_case("a", image.with_array(image.array + 5), label, record={"v": 2})
    assert w.has_case("a") and w.finished_cases() == ["a"]
    img, _ = load_case(index_dataset(tmp_path).cases[0], "internal")
    np.testing.assert_array_equal(img.array, image.array + 5)
