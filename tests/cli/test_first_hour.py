"""What a newcomer meets in the first hour (issue 16): one line and the right exit code for
each mistake, FedSim's own outputs reading back without flags, one numbering of modes."""

from __future__ import annotations

import json

import pytest

from fedsim_app.cli import main
from fedsim_app.io import read_label

SIZE = 32


@pytest.fixture(scope="module")
def toy_model_path(tmp_path_factory):
    from fedsim_app.shape import build_ssm
    from fedsim_app.shape.synthetic import toy_population

    shapes, topo = toy_population(7, seed=1, subdivisions=2)
    return build_ssm(shapes, topo).save(tmp_path_factory.mktemp("ssm") / "toy.npz")


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    """``fedsim cohort --out`` with one case per site at 32³ (seconds)."""
    out = tmp_path_factory.mktemp("cohort")
    assert main(["cohort", "--out", str(out), "--sites", "A,B", "--cases", "1",
                 "--size", str(SIZE)]) == 0
    return out


def one_error_line(capsys, argv, code=2):
    got = main(argv)
    out, err = capsys.readouterr()
    assert got == code, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no traceback, no progress bar, no warning text
    assert "Traceback" not in out + err
    return lines[0]


# 1, 4: --cases below 1 ------------------------------------------------------------------
@pytest.mark.parametrize("cases", ["-1", "0"])
def test_cohort_cases_below_one_is_one_line(tmp_path, capsys, cases):
    line = one_error_line(capsys, ["cohort", "--out", str(tmp_path / "x"), "--cases", cases,
                                   "--sites", "A", "--size", str(SIZE)])
    assert f"--cases {cases}" in line and "1 or more" in line
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.nii.gz"))


# 2, 3: one size rule for cohort and ssm sample ------------------------------------------
@pytest.mark.parametrize("size", ["0", "-4", "4", "15"])
@pytest.mark.parametrize("command", ["cohort", "sample"])
def test_size_rule_is_the_same_everywhere(tmp_path, capsys, size, command, toy_model_path):
    if command == "cohort":
        argv = ["cohort", "--out", str(tmp_path / "x"), "--cases", "1", "--sites", "A"]
    else:
        argv = ["ssm", "sample", "--n", "1", "--out", str(tmp_path / "x"),
                "--ssm", str(toy_model_path)]
    line = one_error_line(capsys, [*argv, "--size", size])
    assert f"--size {size}" in line and "use 16 or more" in line
    assert not (tmp_path / "x").exists()


# 5: FedSim's own label maps read back without --label-codes ------------------------------
def test_ssm_sample_output_fits_without_flags(tmp_path, capsys, toy_model_path):
    out = tmp_path / "s"
    assert main(["ssm", "sample", "--n", "1", "--out", str(out), "--ssm", str(toy_model_path),
                 "--size", str(SIZE)]) == 0
    labels = out / "heart_000" / "labels.nii.gz"
    assert json.loads((out / "heart_000" / "params.json").read_text())["label_codes"] \
        == "internal"
    assert read_label(labels).array.max() == 7  # values 1..7 fit several sets; header says
    capsys.readouterr()
    assert main(["ssm", "fit", str(labels), "--ssm", str(toy_model_path), "--steps", "1",
                 "--coarse-size", "16", "--json"]) == 0
    assert "binary_iou" in json.loads(capsys.readouterr().out)
    assert main(["validate", str(labels)]) == 0
    assert "label codes internal: OK" in capsys.readouterr().out


def test_consecutive_cohort_labels_read_back(tmp_path):
    from fedsim_app.cohort import generate_cohort
    from fedsim_app.io import index_dataset

    summary = generate_cohort(tmp_path, sites="A", cases=1, size=SIZE,
                              label_codes="mmwhs-consecutive")
    label_file = index_dataset(summary.datasets["A"]).cases[0].label
    assert read_label(label_file).array.max() == 7


# 6: validate a folder of site datasets ----------------------------------------------------
def test_validate_cohort_folder_checks_every_site(cohort_dir, capsys):
    assert main(["validate", str(cohort_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2, out
    assert all("nnunet, 1 case(s), label codes mmwhs: OK" in line for line in out)
    assert "Dataset501" in out[0] and "Dataset502" in out[1]
    assert main(["validate", str(cohort_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and len(report["datasets"]) == 2


def test_validate_cohort_folder_reports_a_broken_site(cohort_dir, tmp_path, capsys):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(cohort_dir, copy)
    label = next((copy / "Dataset502_FedSimSiteB" / "labelsTr").glob("*.nii.gz"))
    label.write_bytes(label.read_bytes()[:100])
    assert main(["validate", str(copy)]) == 1
    out = capsys.readouterr().out
    assert str(label) in out and "Dataset501_FedSimSiteA: nnunet, 1 case(s)" in out


# 7: no raw warning, no empty progress bar ------------------------------------------------
def test_cohort_prints_a_note_not_a_python_warning(tmp_path, capsys):
    assert main(["cohort", "--out", str(tmp_path), "--sites", "A", "--cases", "1",
                 "--size", str(SIZE)]) == 0
    err = capsys.readouterr().err
    assert "UserWarning" not in err and "warnings.warn" not in err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--label-codes mmwhs-consecutive" in notes[0]


def test_cohort_error_before_any_case_prints_no_bar(tmp_path, capsys):
    line = one_error_line(capsys, ["cohort", "--out", str(tmp_path), "--sites", "Z"])
    assert "0case" not in line and "unknown site" in line


def test_other_warnings_reach_the_user_as_one_note(capsys, monkeypatch):
    import warnings

    def warn_and_pass(args):
        warnings.warn("something to know\nover two lines", UserWarning, stacklevel=1)
        return 0

    # register() binds the module's ``run`` when the parser is built, inside main()
    monkeypatch.setattr("fedsim_app.cli.info.run", warn_and_pass)
    assert main(["info"]) == 0
    assert capsys.readouterr().err == "fedsim info: note: something to know over two lines\n"


# 9: a missing path is exit 2 in every subcommand -----------------------------------------
@pytest.mark.parametrize("argv", [
    ["validate", "{missing}"],
    ["ssm", "fit", "{missing}.nii.gz"],
    ["ssm", "info", "--ssm", "{missing}.npz"],
    ["ssm", "sample", "--n", "1", "--out", "{tmp}/o", "--ssm", "{missing}.npz"],
    ["ssm", "fit", "{model}", "--ssm", "{missing}.npz"],
    ["cohort", "--preview", "{missing}"],
], ids=["validate", "fit", "info", "sample", "fit-ssm", "cohort-preview"])
def test_missing_path_exit_2_everywhere(tmp_path, capsys, argv, toy_model_path):
    missing = tmp_path / "nope"
    argv = [a.format(missing=missing, tmp=tmp_path, model=toy_model_path) for a in argv]
    line = one_error_line(capsys, argv)
    assert str(missing) in line


# 10: no numpy pickle advice --------------------------------------------------------------
def test_ssm_info_not_a_model(tmp_path, capsys):
    import numpy as np

    bad = tmp_path / "bad.npz"
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad.write_bytes((tmp_path / "obj.npy").read_bytes())
    line = one_error_line(capsys, ["ssm", "info", "--ssm", str(bad)])
    assert "not a FedSim shape model" in line
    assert "pickle" not in line.lower()
    text = tmp_path / "text.npz"
    text.write_text("hello")
    line = one_error_line(capsys, ["ssm", "info", "--ssm", str(text)])
    assert "not a FedSim shape model" in line and "pickle" not in line.lower()


# 11: one numbering of modes, the right count ---------------------------------------------
def test_ssm_info_numbers_modes_like_the_gui(capsys):
    assert main(["ssm", "info"]) == 0
    out = capsys.readouterr().out
    assert "21 parameters: 14 shape modes" in out and "7 pose parameters" in out
    rows = [line.split()[0] for line in out.splitlines() if line[:4].strip().isdigit()]
    assert rows == [str(k) for k in range(1, 15)]
    assert main(["ssm", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n_shape_modes"], info["n_pose_params"]) == (14, 7)
