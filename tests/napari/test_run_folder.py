"""Reading a training run folder while it runs (no display)."""

from __future__ import annotations

import json
import os
import time

from fedsim_napari import run_folder


def test_metrics_skip_a_half_written_line(tmp_path):
    rows = [{"phase": 1, "step": 1, "iou": 0.5, "l1": 2.0}, {"phase": 1, "step": 2, "iou": 0.4}]
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"phase": 1, "st')
    assert run_folder.read_metrics(tmp_path) == rows
    assert run_folder.loss_series(rows) == {"iou": [(0, 0.5), (1, 0.4)], "l1": [(0, 2.0)]}
    assert run_folder.read_metrics(tmp_path / "missing") == []


def test_progress_of_tqdm_output():
    text = ("\rphase 1:  20%|##        | 2/10 [00:01<00:04]\rphase 1:  30%|###       | 3/10"
            " [00:02<00:03]\n\rphase 2:   0%|          | 0/6 [00:00<?]")
    assert run_folder.parse_progress(text) == {1: (3, 10), 2: (0, 6)}
    assert run_folder.parse_progress("trained site A") == {}


def test_quality_summary_of_the_runs_figures(tmp_path):
    assert run_folder.quality_summary(tmp_path) is None  # not scored (yet)
    figures = {"shape_iou": 0.9, "shape_dice": 0.8, "mat_hu_err": 3.0, "enh_hu_err": 31.0,
               "noise_ratio": 1.1, "c2st": 0.7, "c2st_coarse": 1.0, "test_volumes": 4}
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"effort": "full", "sites": {"A": figures}}))
    text = run_folder.quality_summary(tmp_path)
    assert text.startswith("Site A, held-out quality (4 test volumes, full): shape IoU 0.900")
    assert text.endswith("C2ST 0.70 (coarse CT 1.00) — misses enh_hu_err")
    path.write_text(json.dumps({"effort": "quick", "sites": {
        "A": {**figures, "enh_hu_err": 20.0}, "B": {**figures, "test_volumes": 1}}}))
    a, b = run_folder.quality_summary(tmp_path).splitlines()
    assert a.endswith("every target met (quick: rough figures)")
    assert b.startswith("Site B, held-out quality (1 test volume, quick)")
    path.write_text('{"effort": "full", "sites": {"A": {"shape_iou": ')  # half-written
    assert run_folder.quality_summary(tmp_path) is None
    out = "trained site A …\nquality: skipped site A — DIR: [SplitError] no test cases\n"
    assert run_folder.quality_summary(tmp_path, out) == ("quality: skipped site A — DIR: "
                                                         "[SplitError] no test cases")


def test_checkpoints_newest_first(tmp_path):
    old, new = tmp_path / "a.pt", tmp_path / "b.pt"
    old.write_bytes(b"")
    new.write_bytes(b"")
    t = time.time()
    os.utime(old, (t - 10, t - 10))
    assert run_folder.checkpoints(tmp_path) == [new, old]
    assert run_folder.checkpoints(tmp_path / "missing") == []


def test_launch_config_keeps_the_panel_preset_and_phases(tmp_path):
    import tomllib

    from fedsim_app.train.config import load_config

    user = tmp_path / "user.toml"
    user.write_text("slices_per_step = 2\ncoarse_matrix = false\nlr_phase1 = 1e-05\n")
    path = run_folder.launch_config(tmp_path / "run.train.toml", "smoke", user,
                                    {1: 3, 2: 0, 3: 1})
    data = tomllib.loads(path.read_text())
    assert data == {"preset": "smoke", "slices_per_step": 2, "coarse_matrix": False,
                    "lr_phase1": 1e-05, "phase1_epochs": 3, "phase3_epochs": 1}
    cfg = load_config(path)  # what `fedsim train --config` makes of it
    assert cfg.phase1_epochs == 3 and cfg.phase3_epochs == 1 and cfg.slices_per_step == 2
    assert cfg.phase2_epochs == load_config(
        run_folder.launch_config(tmp_path / "p.toml", "smoke")).phase2_epochs
    user.write_text('preset = "cpu"\n')  # a config naming its preset keeps it
    assert tomllib.loads(run_folder.launch_config(tmp_path / "c.toml", "smoke", user)
                         .read_text())["preset"] == "cpu"


def test_launch_config_bad_file_says_which(tmp_path):
    import pytest

    bad = tmp_path / "bad.toml"
    bad.write_text("phase1_epochs = = 3\n")
    with pytest.raises(ValueError, match="bad.toml: cannot read the training config"):
        run_folder.launch_config(tmp_path / "x.toml", "smoke", bad)
    assert not (tmp_path / "x.toml").exists()
