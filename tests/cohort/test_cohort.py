"""The virtual cohort: replayable records, site differences, resumable writing, preview."""

import json

import numpy as np
import pytest

from fedsim_app.cli import main
from fedsim_app.cohort import (
    CaseRecord,
    generate_cohort,
    render_case,
    sample_case,
    scene_classes,
)
from fedsim_app.errors import FedSimError
from fedsim_app.io import index_dataset, load_case, read_nifti
from fedsim_app.sites import load_sites

SIZE = 32


@pytest.fixture(scope="module")
def sites():
    return load_sites()


def test_sites_mirror_table_1(sites):
    assert set(sites) == {"A", "B", "C"}
    assert [sites[k].n_cases for k in "ABC"] == [20, 34, 34]
    assert dict(sites["A"].split) == {"train": 12, "val": 4, "test": 4}
    assert dict(sites["B"].split) == {"train": 20, "val": 7, "test": 7}
    assert {sites[k].population for k in "ABC"} == {"adult", "chd-l", "chd-m"}
    assert len({sites[k].scanner.name for k in "ABC"}) == 3


def test_record_replays_bit_for_bit(sites):
    rec = sample_case(sites["B"], 3, seed=7, size=SIZE)
    again = CaseRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    img1, lab1 = render_case(rec)
    img2, lab2 = render_case(again)
    np.testing.assert_array_equal(lab1.array, lab2.array)
    np.testing.assert_array_equal(img1.array, img2.array)
    assert sample_case(sites["B"], 3, seed=7, size=SIZE) == rec
    assert sample_case(sites["B"], 4, seed=7, size=SIZE) != rec


def test_case_has_heart_in_torso_and_enhanced_blood(sites):
    rec = sample_case(sites["A"], 0, size=48)
    labels, scene, _ = scene_classes(rec)
    assert set(np.unique(labels)) == set(range(8))
    image, _ = render_case(rec, fidelity="fast")
    hu = image.array
    lv = np.median(hu[labels == 1])
    myo = np.median(hu[labels == 2])
    assert lv > myo + 100, "contrast blood must be brighter than myocardium"
    assert np.median(hu[scene == 3]) < -500, "inflated lung is dark"  # anatomy.Tissue.LUNG


def test_left_and_right_enhancement_follow_the_record(sites):
    rec = sample_case(sites["C"], 1, size=40)
    image, label = render_case(rec, fidelity="fast")
    lv = np.median(image.array[label.array == 1])
    rv = np.median(image.array[label.array == 3])
    # site C times the scan early: right heart more enhanced than left
    assert rec.iodine_right_mg_per_ml > rec.iodine_left_mg_per_ml
    assert rv > lv


def test_sites_differ_in_noise_and_spacing(sites):
    noise = {}
    for key in "AB":
        rec = sample_case(sites[key], 0, size=40)
        image, label = render_case(rec, fidelity="fast")
        # noise: spread of HU inside the LV blood pool (uniform material)
        noise[key] = float(np.std(image.array[label.array == 1]))
        assert image.spacing_mm[0] == pytest.approx(rec.spacing_mm)
    assert noise["A"] != pytest.approx(noise["B"], rel=0.1)


def test_generate_resumes_and_reads_back(tmp_path, sites):
    calls = []
    summary = generate_cohort(tmp_path, sites="A,B", cases=3, size=SIZE,
                              progress=lambda *a: calls.append(a))
    assert summary.written == 6 and summary.skipped == 0 and len(calls) == 6
    root_a = summary.datasets["A"]
    idx = index_dataset(root_a)
    assert idx.layout == "nnunet" and len(idx.cases) == 3
    image, label = load_case(idx.cases[0], "mmwhs")
    assert image.shape == (SIZE,) * 3 and label.array.max() == 7
    raw = read_nifti(root_a / "labelsTr" / "sitea_000.nii.gz", kind="label").array
    assert set(np.unique(raw)) <= {0, 205, 420, 500, 550, 600, 820, 850}
    split = json.loads((root_a / "fedsim_split.json").read_text())
    assert sum(len(v) for v in split.values()) == 3 and all(split.values())
    record = json.loads((root_a / "fedsim" / "sitea_000.json").read_text())["record"]
    assert record["site"] == "A" and "heart" in record and "noise_seed" in record
    # a second run keeps every finished case
    again = generate_cohort(tmp_path, sites="A,B", cases=3, size=SIZE)
    assert again.written == 0 and again.skipped == 6


def test_interrupted_case_is_redone(tmp_path, sites):
    summary = generate_cohort(tmp_path, sites="A", cases=2, size=SIZE)
    root = summary.datasets["A"]
    (root / "fedsim" / "sitea_001.json").unlink()  # as if killed before the record landed
    again = generate_cohort(tmp_path, sites="A", cases=2, size=SIZE)
    assert again.written == 1 and again.skipped == 1
    assert not list(root.rglob("*.tmp*"))


def test_unknown_site_is_a_clear_error(tmp_path):
    with pytest.raises(FedSimError, match="unknown site"):
        generate_cohort(tmp_path, sites="A,Z", cases=1, size=SIZE)


def test_cli_cohort_and_preview(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["cohort", "--out", str(out), "--sites", "A,B,C", "--cases", "1",
                 "--size", str(SIZE), "--preview", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "wrote 3 case(s)" in text
    png = tmp_path / "preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["cohort", "--preview", str(out)]) == 0
    assert (out / "preview.png").exists()


def test_cli_cohort_needs_a_destination(capsys):
    assert main(["cohort"]) == 2
    assert "--out" in capsys.readouterr().err
