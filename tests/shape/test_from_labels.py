"""SSM from label maps: registration of a dataset, failing cases named, leave-one-out."""

import json

import numpy as np
import pytest

from fedsim_app.io import Volume, from_internal, write_nifti
from fedsim_app.io.grid import Grid
from fedsim_app.shape import FitConfig, fit_labels, load_atlas_ssm, voxelize
from fedsim_app.shape.from_labels import build_from_labels, label_files
from fedsim_app.shape.register import RegisterConfig

anatomy = pytest.importorskip("fedsim_app.anatomy")

FAST = RegisterConfig(fit=FitConfig(steps=40, coarse_size=32))


def heart_labels(population, seed, spacing=None):
    """A procedural heart's label map (internal codes) on a grid around it (``spacing``
    None: 64 voxels along the heart's longest side, an infant's heart as a man's)."""
    model = load_atlas_ssm()
    v = anatomy.build_heart(anatomy.sample_heart_params(population, seed)).stacked_vertices()
    v = v + 40.0  # a scanner frame away from the model's
    spacing = spacing or float((v.max(0) - v.min(0)).max()) / 64
    lo, hi = v.min(0) - 10, v.max(0) + 10
    grid = Grid.centered(tuple(int(n) for n in np.ceil((hi - lo) / spacing)[::-1]), spacing,
                         tuple((lo + hi) / 2))
    return voxelize(model, v, grid), grid


def write_dataset(root, population, seeds, spacing=None, codes="mmwhs"):
    root.mkdir(parents=True, exist_ok=True)
    for k in seeds:
        lab, grid = heart_labels(population, k, spacing)
        write_nifti(Volume(from_internal(lab, codes), grid, kind="label"),
                    root / f"h{k:02d}_label.nii.gz")
    return root


@pytest.mark.slow
def test_leave_one_out_ssm_fits_the_held_out_heart_better_than_the_atlas(tmp_path):
    root = write_dataset(tmp_path / "chd", "chd-m", (0, 1, 2, 3, 5))
    model, reports = build_from_labels(root, cfg=FAST, log=lambda s: None)
    kept = sum(r.ok for r in reports)
    assert kept >= 3, [r.to_dict() for r in reports]
    assert all(r.reason for r in reports if not r.ok)  # a skipped case says why
    assert model.n_vertices == load_atlas_ssm().n_vertices
    assert (model.eigenvalues[: kept - 1] > 0).all()  # K hearts: K - 1 modes of variation
    held, grid = heart_labels("chd-m", 4)
    cfg = FitConfig(steps=40, coarse_size=32)
    atlas_fit = fit_labels(load_atlas_ssm(), held, grid, cfg)
    own_fit = fit_labels(model, held, grid, cfg)
    atlas_dice = np.mean(list(atlas_fit.dice.values()))
    own_dice = np.mean(list(own_fit.dice.values()))
    assert own_dice > atlas_dice + 0.05 and own_fit.binary_iou > atlas_fit.binary_iou


@pytest.mark.slow
def test_cli_build_from_labels_names_and_skips_a_failing_case(tmp_path, capsys):
    from fedsim_app.cli import main

    root = write_dataset(tmp_path / "ds", "adult", range(3), 3.0)
    lab, grid = heart_labels("adult", 9, 3.0)
    write_nifti(Volume(np.zeros_like(lab), grid, kind="label"), root / "h09_label.nii.gz")
    out = tmp_path / "mine.npz"
    assert main(["ssm", "build", "--from-labels", str(root), "--label-codes", "mmwhs",
                 "--out", str(out)]) == 0
    text, err = capsys.readouterr()
    assert out.is_file() and "from 3 of 4 label maps" in text
    assert "h09_label.nii.gz" in text and "background only" in text
    report = json.loads((tmp_path / "mine.report.json").read_text())
    bad = [c for c in report["cases"] if not c["ok"]]
    assert [c["path"].endswith("h09_label.nii.gz") for c in bad] == [True]
    good = [c for c in report["cases"] if c["ok"]]
    assert all(c["mean_dice"] >= 0.9 and c["self_intersections"] == 0 for c in good)
    assert main(["ssm", "info", "--ssm", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_vertices"] == load_atlas_ssm().n_vertices


def test_label_files_of_a_plain_folder(tmp_path):
    lab, grid = heart_labels("adult", 1, 4.0)
    (tmp_path / "heart_000").mkdir()
    write_nifti(Volume(lab, grid, kind="label"), tmp_path / "heart_000" / "labels.nii.gz")
    files, declared = label_files(tmp_path)
    assert [f.name for f in files] == ["labels.nii.gz"] and declared is None


def test_cli_fit_refine_returns_meshes_in_correspondence(tmp_path, capsys):
    from fedsim_app.cli import main
    from fedsim_app.io import read_label

    lab, grid = heart_labels("chd-l", 2, 2.0)
    path = write_nifti(Volume(lab, grid, kind="label"), tmp_path / "chd.nii.gz")
    out = tmp_path / "fit"
    assert main(["ssm", "fit", str(path), "--label-codes", "internal", "--refine", "--json",
                 "--steps", "40", "--coarse-size", "32", "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out)
    reg = res["registration"]
    assert reg["ok"] and reg["mean_dice"] > res["mean_dice"] + 0.05
    assert 0 <= res["params_at_limit"] <= 21
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.load(out / "meshes" / "rv.ply", process=False)
    assert len(mesh.vertices) == 642  # the template's vertices, in order
    fitted = read_label(out / "fitted_labels.nii.gz", "internal").array
    assert fitted.shape == lab.shape
    inter = np.logical_and(fitted > 0, lab > 0).sum()
    assert inter / np.logical_or(fitted > 0, lab > 0).sum() == pytest.approx(
        reg["binary_iou"], abs=1e-6)


@pytest.mark.slow
def test_with_atlas_adds_the_twenty_atlas_hearts(tmp_path):
    root = write_dataset(tmp_path / "one", "adult", (7,), codes="internal")
    logged = []
    model, reports = build_from_labels(root, "internal", with_atlas=True, cfg=FAST,
                                       log=logged.append)
    assert [r.ok for r in reports] == [True] and "registered" in logged[0]
    # 21 training shapes: 20 modes of variation (14 used by the parameters)
    assert int((model.eigenvalues > 1e-6 * model.eigenvalues[0]).sum()) == 20
