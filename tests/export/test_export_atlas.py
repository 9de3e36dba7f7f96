"""fedsim export: the atlas model end to end, a (smoke) checkpoint, resume, errors, replay."""

from __future__ import annotations

import errno
import json
import os
import signal

import numpy as np
import pytest

from fedsim_app.cli import main
from fedsim_app.export.dataset import NOVELTY_FILE, export_dataset, replay
from fedsim_app.export.sample import ExportModel, load_export_model
from fedsim_app.io import read_nifti
from fedsim_app.io.errors import UnwritableError
from fedsim_app.io.records import read_record

SIZE = 16


@pytest.fixture(scope="module")
def atlas_model():
    return load_export_model("atlas", "A", size=SIZE)


@pytest.fixture(scope="module")
def atlas_export(atlas_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    summary = export_dataset(atlas_model, n=3, out=out, seed=4, meshes=True)
    return summary


def test_export_is_an_nnunet_dataset_monai_reads(atlas_export):
    from monai.data import load_decathlon_datalist

    root = atlas_export.root
    assert root.name == "Dataset601_FedSimExportA" and atlas_export.written == 3
    items = load_decathlon_datalist(str(root / "dataset.json"), data_list_key="training",
                                    base_dir=str(root))
    assert len(items) == 3
    for item in items:
        image, label = read_nifti(item["image"]), read_nifti(item["label"], kind="label")
        assert image.shape == label.shape == (SIZE,) * 3
        # affine honours the sample's spacing: the 208 mm field of view over SIZE voxels
        np.testing.assert_allclose(image.spacing_mm, (208.0 / SIZE,) * 3, rtol=1e-5)
        heart = label.array > 0
        assert label.array.max() >= 6  # images and labels line up: the heart is denser
        assert image.array[heart].mean() > image.array[~heart].mean() + 100
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"]["background"] == 0 and meta["channel_names"] == {"0": "CT"}
    assert len(list((root / "fedsim" / "meshes" / "case_0000").glob("*.ply"))) == 7


def test_images_are_int16_hu_and_the_record_replays_bit_for_bit(atlas_export):
    import nibabel as nib

    root = atlas_export.root
    img = nib.load(root / "imagesTr" / "case_0002_0000.nii.gz")
    assert img.get_data_dtype() == np.int16
    rec = read_record(root / "fedsim" / "case_0002.json")
    assert rec.kind == "export-case" and rec.format_version == 1
    body = rec["record"]
    assert body["model"]["checkpoint"] is None and "atlas" in body["model"]["model"]
    assert "no enhancer" in body["enhancer_source"] and "Fix-Mat" in body["material_source"]
    assert len(body["params"]) == 21 and body["export_seed"] == 4
    again = replay(rec)
    written = read_nifti(root / "imagesTr" / "case_0002_0000.nii.gz").array
    np.testing.assert_array_equal(written, np.rint(again.ct_hu[0].numpy()))
    labels = read_nifti(root / "labelsTr" / "case_0002.nii.gz", kind="label").array
    np.testing.assert_array_equal(labels, again.labels[0].numpy())


def test_novelty_in_records_and_table(atlas_export):
    root = atlas_export.root
    rows = (root / NOVELTY_FILE).read_text().splitlines()
    assert rows[0].startswith("case_id,latent_distance") and len(rows) == 4
    nov = read_record(root / "fedsim" / "case_0000.json")["record"]["novelty"]
    assert 0.0 < nov["heart_iou"] <= 1.0 and nov["latent_distance"] > 0
    assert nov["nearest_by_iou"].startswith("atlas_")
    assert any("novelty" in line for line in atlas_export.lines())


def test_a_training_heart_is_found_as_its_own_nearest(atlas_model):
    # novelty must be able to say "memorised": a training heart has IoU 1 with itself
    codes, hearts = atlas_model.training_reference
    from fedsim_app.export.sample import CaseDraw

    draw = CaseDraw(0, 0, None, tuple([*codes[3], *[0.0] * 7]))
    nov = atlas_model.novelty(draw, hearts[3].astype(np.uint8))
    assert nov["heart_iou"] == 1.0 and nov["nearest_by_iou"] == "atlas_03"
    assert nov["latent_distance"] == pytest.approx(0.0, abs=1e-6)


def test_case_killed_mid_write_leaves_no_half_file_and_is_redone(atlas_model, tmp_path,
                                                                   monkeypatch):
    import fedsim_app.io.writer as writer_mod

    real = writer_mod.write_nifti
    calls = {"n": 0}

    def dying(volume, path, **kw):
        calls["n"] += 1
        if calls["n"] == 4:  # case_0001's label file
            raise KeyboardInterrupt
        return real(volume, path, **kw)

    monkeypatch.setattr(writer_mod, "write_nifti", dying)
    with pytest.raises(KeyboardInterrupt):
        export_dataset(atlas_model, n=3, out=tmp_path, seed=1)
    root = tmp_path / "Dataset601_FedSimExportA"
    assert not [p for p in root.rglob(".*") if p.is_file()]  # no temporary leftovers
    assert (root / "fedsim" / "case_0000.json").is_file()
    assert not (root / "fedsim" / "case_0001.json").exists()
    assert not (root / "labelsTr" / "case_0001.nii.gz").exists()
    monkeypatch.setattr(writer_mod, "write_nifti", real)
    summary = export_dataset(atlas_model, n=3, out=tmp_path, seed=1)
    assert (summary.skipped, summary.written) == (1, 2)
    assert len(json.loads((root / "dataset.json").read_text())["training"]) == 3


def test_other_seed_rewrites_finished_cases(atlas_model, tmp_path):
    export_dataset(atlas_model, n=1, out=tmp_path, seed=1)
    assert export_dataset(atlas_model, n=1, out=tmp_path, seed=2).written == 1


def test_full_disk_is_reported_with_the_path(atlas_model, tmp_path, monkeypatch):
    import fedsim_app.io.writer as writer_mod

    def full(volume, path, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(writer_mod, "write_nifti", full)
    with pytest.raises(UnwritableError) as info:
        export_dataset(atlas_model, n=1, out=tmp_path, seed=1)
    assert "disk is full" in str(info.value) and "case_0000_0000.nii.gz" in str(info.value)


def test_unwritable_folder_one_line_rc2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a folder cannot be made inside a file, even by root
    code = main(["export", "--checkpoint", "atlas", "--out", str(blocker / "out"), "--n", "1",
                 "--size", str(SIZE)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and str(blocker) in err[-1] and "Traceback" not in "".join(err)
    assert len([line for line in err if "error" in line]) == 1


@pytest.mark.parametrize("argv, words", [
    (["--site", "Z"], "unknown site"),
    (["--checkpoint", "nowhere/run"], "no checkpoint there"),
    (["--label-codes", "nope"], "unknown label code set"),
    (["--size", "20"], "multiple of 16"),
])
def test_bad_inputs_one_line_rc2(argv, words, tmp_path, capsys):
    code = main(["export", "--out", str(tmp_path), "--n", "1", "--size", str(SIZE), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0]


def test_corrupt_checkpoint_and_bad_codes_file_named(tmp_path, capsys):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "o"),
                 "--n", "1", "--size", str(SIZE)]) == 2
    assert str(bad) in capsys.readouterr().err
    codes = tmp_path / "codes.json"
    codes.write_text('{"500": ')
    assert main(["export", "--checkpoint", "atlas", "--label-codes", str(codes), "--out",
                 str(tmp_path / "o"), "--n", "1", "--size", str(SIZE)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(codes) in err[0]


def test_ctrl_c_exits_130_after_the_last_complete_case(tmp_path, monkeypatch, capsys):
    real = ExportModel.render

    def render_then_interrupt(self, draw):
        out = real(self, draw)
        if draw.index == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while case_0001 is being made
        return out

    monkeypatch.setattr(ExportModel, "render", render_then_interrupt)
    code = main(["export", "--checkpoint", "atlas", "--out", str(tmp_path), "--n", "4",
                 "--size", str(SIZE), "--label-codes", "mmwhs-consecutive"])
    assert code == 130
    root = tmp_path / "Dataset601_FedSimExportA"
    assert sorted(p.name for p in (root / "fedsim").glob("*.json")) == [
        "case_0000.json", "case_0001.json"]
    assert len(json.loads((root / "dataset.json").read_text())["training"]) == 2
    assert "resume" in capsys.readouterr().err


def test_cli_summary_and_latents_file(tmp_path, capsys):
    lat = tmp_path / "params.npy"
    np.save(lat, np.zeros((2, 21), np.float32))
    code = main(["export", "--checkpoint", "default", "--out", str(tmp_path / "Dataset777_Mine"),
                 "--n", "2", "--size", str(SIZE), "--latents", str(lat)])
    out = capsys.readouterr().out
    assert code == 0 and "2/2 cases" in out and "volumes/min" in out
    assert "nnUNetv2_plan_and_preprocess -d 777" in out
    rec = read_record(tmp_path / "Dataset777_Mine" / "fedsim" / "case_0001.json")["record"]
    assert rec["params"] == [0.0] * 21
