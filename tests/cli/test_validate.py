"""``fedsim validate``: exit codes and one line per problem naming the file."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from io_testdata import blob_label, pixdim_patch, ramp_image, write_raw_nii  # noqa: E402

from fedsim_app.cli import main  # noqa: E402
from fedsim_app.io import from_internal, write_nifti  # noqa: E402


def make_clean_pairs(root: Path, n: int = 3) -> None:
    image = ramp_image()
    label = blob_label(image)
    mm = label.with_array(from_internal(label.array, "mmwhs"))
    for i in range(n):
        write_nifti(image, root / f"c{i}_image.nii.gz")
        write_nifti(mm, root / f"c{i}_label.nii.gz")


def run(capsys, *argv):
    code = main(["validate", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_dataset_exit_0(tmp_path, capsys):
    make_clean_pairs(tmp_path)
    code, out, err = run(capsys, tmp_path)
    assert code == 0, out
    assert "OK" in out and "pairs" in out and "mmwhs" in out
    assert out.count("\n") == 1 and err == ""


def test_bad_files_one_line_each_exit_1(tmp_path, capsys):
    make_clean_pairs(tmp_path, 5)
    image = ramp_image()
    # c0: truncated gzip image
    p0 = tmp_path / "c0_image.nii.gz"
    p0.write_bytes(p0.read_bytes()[:200])
    # c1: NaN in the image
    arr = image.array.copy()
    arr[1, 1, 1] = np.nan
    write_nifti(image.with_array(arr), tmp_path / "c1_image.nii.gz")
    # c2: zero spacing in the raw header
    write_raw_nii(tmp_path / "c2_image.nii.gz", image, patch=pixdim_patch(1, 0.0))
    # c3: label with a foreign value
    lab = from_internal(blob_label(image).array, "mmwhs")
    lab[0, 0, 1] = 77
    write_nifti(image.with_array(lab, kind="label"), tmp_path / "c3_label.nii.gz")
    # c4: label without its image
    (tmp_path / "c4_image.nii.gz").unlink()
    # a stray non-NIfTI named like one
    (tmp_path / "c5_image.nii.gz").write_bytes(gzip.compress(b"hello" * 100))

    code, out, err = run(capsys, tmp_path, "--label-codes", "mmwhs")
    assert code == 1
    lines = [ln for ln in out.splitlines() if ln.startswith(str(tmp_path))
             and "[" in ln]
    expected = {"c0_image": "CorruptFileError", "c1_image": "NonFiniteError",
                "c2_image": "SpacingError", "c3_label": "LabelValueError",
                "c4_label": "MissingImageError", "c5_image": "NotNiftiError"}
    assert len(lines) == len(expected), out
    for stem, error in expected.items():
        hits = [ln for ln in lines if f"{stem}.nii.gz" in ln]
        assert len(hits) == 1 and f"[{error}]" in hits[0], (stem, out)
    assert "Traceback" not in out + err
    assert "6 problem(s)" in out


def test_json_output(tmp_path, capsys):
    make_clean_pairs(tmp_path, 2)
    (tmp_path / "c1_label.nii.gz").write_bytes(b"")
    code, out, _ = run(capsys, tmp_path, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["layout"] == "pairs" and report["n_cases"] == 2
    assert [p["path"] for p in report["problems"]] == [str(tmp_path / "c1_label.nii.gz")]


def test_ambiguous_codes_reported_then_resolved(tmp_path, capsys):
    image = ramp_image()
    write_nifti(image, tmp_path / "a_image.nii.gz")
    write_nifti(blob_label(image), tmp_path / "a_label.nii.gz")
    code, out, _ = run(capsys, tmp_path)
    assert code == 1 and "LabelCodesError" in out and "--label-codes" in out
    code, out, _ = run(capsys, tmp_path, "--label-codes", "internal")
    assert code == 0, out


def test_label_codes_from_mapping_file(tmp_path, capsys):
    image = ramp_image()
    write_nifti(image, tmp_path / "a_image.nii.gz")
    lab = np.where(blob_label(image).array == 1, 10, 0).astype(np.uint8)
    write_nifti(image.with_array(lab, kind="label"), tmp_path / "a_label.nii.gz")
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"10": "lv_blood_pool"}))
    code, out, _ = run(capsys, tmp_path, "--label-codes", mapping)
    assert code == 0, out


def test_single_file(tmp_path, capsys):
    good = write_nifti(ramp_image(), tmp_path / "ok.nii.gz")
    assert run(capsys, good)[0] == 0
    flat = tmp_path / "flat.nii.gz"
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), flat)
    code, out, _ = run(capsys, flat)
    assert code == 1 and f"{flat}: [DimensionError]" in out


@pytest.mark.parametrize("what", ["missing", "not-a-dataset"])
def test_unusable_path_is_one_line_exit_2(tmp_path, capsys, what):
    """A path that holds no dataset is input that cannot be used (exit 2, as everywhere)."""
    target = tmp_path / "nope" if what == "missing" else tmp_path
    if what != "missing":
        (tmp_path / "readme.txt").write_text("x")
    code, out, err = run(capsys, target)
    assert code == 2 and str(target) in err and "Traceback" not in out + err
    assert err.count("\n") == 1


def test_nnunet_written_dataset_validates(tmp_path, capsys):
    from fedsim_app.io import DatasetWriter

    image = ramp_image()
    w = DatasetWriter(tmp_path, "ok")
    w.add_case("a", image, blob_label(image))
    w.finalize()
    code, out, _ = run(capsys, tmp_path)
    assert code == 0 and "nnunet" in out and "internal" in out


@pytest.mark.parametrize("codes", ["acdc", "missing.json"])
def test_bad_label_codes_option_is_usage_error(tmp_path, capsys, codes):
    make_clean_pairs(tmp_path, 1)
    code, out, err = run(capsys, tmp_path, "--label-codes", tmp_path / codes
                         if codes.endswith(".json") else codes)
    assert code == 2 and "label" in err and "Traceback" not in err


def _write_labels(root: Path, codes: str, n: int, stray: dict) -> None:
    """``n`` pairs in ``codes``; ``stray`` maps case index → a value planted in its label."""
    image = ramp_image()
    for i in range(n):
        lab = from_internal(blob_label(image).array, codes)
        if i in stray:
            lab[0, 0, 1] = stray[i]
        write_nifti(image, root / f"c{i}_image.nii.gz")
        write_nifti(image.with_array(lab, kind="label"), root / f"c{i}_label.nii.gz")


def test_detection_names_each_file_with_stray_values(tmp_path, capsys):
    # MM-WHS codes everywhere; two files carry a value of no code set
    _write_labels(tmp_path, "mmwhs", 5, {1: 77, 3: 13})
    code, out, err = run(capsys, tmp_path)
    assert code == 1
    lines = [ln for ln in out.splitlines() if "[LabelValueError]" in ln]
    assert len(lines) == 2, out
    assert any("c1_label.nii.gz" in ln and "77" in ln for ln in lines), out
    assert any("c3_label.nii.gz" in ln and "13" in ln for ln in lines), out
    assert "label codes mmwhs" in out and "match no known code set" not in out


def test_ambiguous_codes_still_name_the_stray_file(tmp_path, capsys):
    # codes 1..7 fit internal, mmwhs-consecutive and imagechd; one file holds a 9
    _write_labels(tmp_path, "mmwhs-consecutive", 4, {2: 9})
    code, out, err = run(capsys, tmp_path)
    assert code == 1
    named = [ln for ln in out.splitlines() if "c2_label.nii.gz" in ln]
    assert len(named) == 1 and "[9]" in named[0], out
    assert "--label-codes" in out
    assert not any(f"c{i}_label.nii.gz" in out for i in (0, 1, 3))
