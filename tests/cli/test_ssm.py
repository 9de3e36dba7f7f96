import json

import numpy as np
import pytest

from fedsim_app.cli import main
from fedsim_app.io import Volume, read_label, write_nifti
from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import STRUCTURES
from fedsim_app.shape import build_ssm, voxelize
from fedsim_app.shape.synthetic import toy_population


@pytest.fixture(scope="module")
def toy_model_path(tmp_path_factory):
    shapes, topo = toy_population(7, seed=1, subdivisions=2)
    return build_ssm(shapes, topo).save(tmp_path_factory.mktemp("ssm") / "toy.npz")


def _labels_file(model_path, folder, orientation="LAS"):
    from fedsim_app.shape import ShapeModel

    model = ShapeModel.load(model_path)
    p = np.full(21, 0.3)
    grid = Grid.centered((36, 40, 44), (3.0, 2.5, 2.2), tuple(model.center_mm))
    labels = voxelize(model, model.decode(p), grid)
    return write_nifti(Volume(labels, grid, kind="label"), folder / "labels.nii.gz",
                       orientation=orientation)


def test_ssm_info_json(toy_model_path, capsys):
    assert main(["ssm", "info", "--ssm", str(toy_model_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["structures"] == list(STRUCTURES)
    ratio = info["explained_variance_ratio"]
    assert len(ratio) >= 14 and abs(sum(ratio) - 1) < 1e-9


def test_ssm_info_text(toy_model_path, capsys):
    assert main(["ssm", "info", "--ssm", str(toy_model_path)]) == 0
    out = capsys.readouterr().out
    assert "explained" in out and "14 modes explain" in out


def test_ssm_fit_json_and_outputs(toy_model_path, tmp_path, capsys):
    path = _labels_file(toy_model_path, tmp_path)
    out_dir = tmp_path / "fit"
    code = main(["ssm", "fit", str(path), "--label-codes", "internal", "--json",
                 "--ssm", str(toy_model_path), "--steps", "15", "--coarse-size", "32",
                 "--out", str(out_dir)])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert isinstance(res["binary_iou"], float) and 0.5 < res["binary_iou"] <= 1
    assert set(res["dice"]) == set(STRUCTURES)
    assert all(isinstance(v, float) for v in res["dice"].values())
    assert len(res["params"]) == 21 and all(abs(x) <= 1 for x in res["params"])
    assert isinstance(res["seconds"], float)
    for name in STRUCTURES:
        for ext in ("ply", "obj", "stl"):
            assert (out_dir / "meshes" / f"{name}.{ext}").is_file()
    import nibabel as nib

    fitted, given = nib.load(out_dir / "fitted_labels.nii.gz"), nib.load(path)
    np.testing.assert_allclose(fitted.affine, given.affine, atol=1e-5)
    assert fitted.shape == given.shape
    back = read_label(out_dir / "fitted_labels.nii.gz", "internal")
    assert back.array.max() <= 7 and (back.array > 0).sum() > 1000


def test_ssm_fit_rejects_missing_file(toy_model_path, tmp_path, capsys):
    code = main(["ssm", "fit", str(tmp_path / "nope.nii.gz"), "--ssm", str(toy_model_path)])
    assert code == 2
    assert "nope.nii.gz" in capsys.readouterr().err


def test_ssm_sample_writes_records(toy_model_path, tmp_path, capsys):
    out = tmp_path / "samples"
    code = main(["ssm", "sample", "--n", "2", "--out", str(out), "--seed", "5",
                 "--ssm", str(toy_model_path), "--size", "32"])
    assert code == 0
    for k in range(2):
        case = out / f"heart_{k:03d}"
        rec = json.loads((case / "params.json").read_text())
        assert len(rec["params"]) == 21 and rec["seed"] == 5
        assert (case / "meshes" / "rv.ply").is_file()
        lab = read_label(case / "labels.nii.gz", "internal")
        assert lab.shape == (32, 32, 32) and lab.array.max() >= 6
    # same seed → same parameters
    out2 = tmp_path / "again"
    main(["ssm", "sample", "--n", "1", "--out", str(out2), "--seed", "5",
          "--ssm", str(toy_model_path), "--size", "32"])
    a = json.loads((out / "heart_000" / "params.json").read_text())["params"]
    b = json.loads((out2 / "heart_000" / "params.json").read_text())["params"]
    assert a == b


def test_ssm_without_action_prints_help(capsys):
    assert main(["ssm"]) == 2
    assert "fit" in capsys.readouterr().out


@pytest.mark.slow
def test_ssm_sample_other_population_builds_and_caches(tmp_path, monkeypatch, capsys):
    pytest.importorskip("fedsim_app.anatomy")
    monkeypatch.setenv("FEDSIM_CACHE", str(tmp_path / "cache"))
    from fedsim_app.shape.atlas import population_ssm

    population_ssm.cache_clear()
    out = tmp_path / "adult"
    assert main(["ssm", "sample", "--n", "1", "--out", str(out), "--population", "adult",
                 "--size", "48"]) == 0
    cached = list((tmp_path / "cache" / "ssm").glob("adult_seed0_*_ssm.npz"))
    assert len(cached) == 1  # named with the anatomy's fingerprint: never a stale model
    rec = json.loads((out / "heart_000" / "params.json").read_text())
    assert rec["population"] == "adult"
    population_ssm.cache_clear()


@pytest.mark.parametrize("codes", ["mmwhs-consecutive", "mmwhs"])
def test_ssm_fit_writes_labels_in_the_input_codes(toy_model_path, tmp_path, capsys, codes):
    from fedsim_app.io import from_internal
    from fedsim_app.io.labels import get_code_set

    internal = _labels_file(toy_model_path, tmp_path)
    given = read_label(internal, "internal")
    path = write_nifti(given.with_array(from_internal(given.array, codes)),
                       tmp_path / "coded.nii.gz")
    out_dir = tmp_path / "fit"
    argv = ["ssm", "fit", str(path), "--label-codes", codes, "--json", "--ssm",
            str(toy_model_path), "--steps", "5", "--coarse-size", "24"]
    assert main([*argv, "--out", str(out_dir)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fitted_label_codes"] == codes
    import nibabel as nib

    raw = np.asarray(nib.load(out_dir / "fitted_labels.nii.gz").dataobj)
    assert set(np.unique(raw).tolist()) <= set(get_code_set(codes).codes)
    assert np.unique(raw).size >= 7
    # read back in the input's codes, it is the fit's internal label map
    back = read_label(out_dir / "fitted_labels.nii.gz", codes).array
    assert main([*argv, "--out", str(tmp_path / "fit2"), "--out-codes", "internal"]) == 0
    capsys.readouterr()
    internal_out = read_label(tmp_path / "fit2" / "fitted_labels.nii.gz", "internal").array
    np.testing.assert_array_equal(back, internal_out)
