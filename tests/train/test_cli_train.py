"""``fedsim train``: a smoke run end to end, interrupt and resume, bad data."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fedsim_app.cli import main
from fedsim_app.train.quality import target_misses

ROOT = Path(__file__).resolve().parents[2]


def _no_matrix(tmp_path):
    path = tmp_path / "nomatrix.toml"
    path.write_text('preset = "smoke"\ncoarse_matrix = false\n')
    return path


def test_bad_data_prints_the_validate_line(tmp_path, capsys):
    (tmp_path / "case_image.nii.gz").write_bytes(b"not a nifti")
    (tmp_path / "case_label.nii.gz").write_bytes(b"not a nifti")
    rc = main(["train", "--data", str(tmp_path), "--labels", "1", "--preset", "smoke",
               "--config", str(_no_matrix(tmp_path)),
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "case_image.nii.gz" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_missing_cohort_says_what_to_do(tmp_path, capsys):
    rc = main(["train", "--site", "A", "--cohort", str(tmp_path), "--preset", "smoke",
               "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "fedsim cohort --out" in capsys.readouterr().err


def test_train_smoke_then_resume_finished(tiny_site, tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('preset = "smoke"\nphase1_epochs = 1\nphase2_epochs = 1\n'
                   'phase3_epochs = 1\nslices_per_step = 2\ncoarse_matrix = false\n')
    run = tmp_path / "run"
    args = ["train", "--data", str(tiny_site), "--labels", "2", "--config", str(cfg),
            "--out", str(run)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trained site A" in out
    assert (run / "checkpoint.pt").is_file() and (run / "samples.png").is_file()
    # the end of the run: the figures on the test split, quick at the smoke preset
    written = json.loads((run / "quality.json").read_text())
    figures = written["sites"]["A"]
    assert written["effort"] == "quick" and figures["test_volumes"] == 1
    assert f"shape_iou={figures['shape_iou']:.3f}" in out
    assert "quality (1 test volume, quick" in out
    # the targets line names exactly the figures that miss (a one-epoch model misses some)
    verdict = next(line for line in out.splitlines() if line.startswith("quality: site A "))
    misses = target_misses(figures)
    named = [part.split()[0] for part in verdict.removeprefix("quality: site A misses ")
             .split("; ")] if "misses" in verdict else []
    assert named == misses and (misses or "meets every target of issue 9" in verdict)
    # --resume needs only the run folder: dataset, site and label budget are the run's
    assert json.loads((run / "run.json").read_text())["labels"] == 2
    assert main(["train", "--out", str(run), "--resume"]) == 0  # finished: nothing to do
    assert "trained site A (2 labelled" in capsys.readouterr().out


def _copy_with_split(tiny_site, tmp_path, **split):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_site, data)
    path = data / "fedsim_split.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **split}))
    return data


def _tiny_args(data, tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('preset = "smoke"\nphase1_epochs = 1\nphase2_epochs = 1\n'
                   'phase3_epochs = 1\nslices_per_step = 2\ncoarse_matrix = false\n')
    return ["train", "--data", str(data), "--labels", "2", "--config", str(cfg),
            "--out", str(tmp_path / "run")]


@pytest.mark.slow
def test_no_test_split_skips_the_figures_and_off_scores_nothing(tiny_site, tmp_path, capsys):
    data = _copy_with_split(tiny_site, tmp_path, test=[])
    assert main(_tiny_args(data, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "quality: skipped site A" in out and "no test cases" in out
    assert not (tmp_path / "run" / "quality.json").exists()
    # --quality off scores nothing
    assert main([*_tiny_args(data, tmp_path)[:-2], "--quality", "off", "--out",
                 str(tmp_path / "run3")]) == 0
    assert "quality" not in capsys.readouterr().out


def test_resume_of_a_folder_without_run_record_says_what_to_do(tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "nothing"), "--resume"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "run.json" in err and "--data" in err and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130(tiny_site, tmp_path):
    cfg = tmp_path / "slow.toml"
    cfg.write_text('preset = "smoke"\nphase1_epochs = 200\ncoarse_matrix = false\n')
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedsim_app", "train", "--data", str(tiny_site), "--labels",
         "2", "--config", str(cfg), "--out", str(run)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait for the first logged step, then interrupt
    metrics = run / "metrics.jsonl"
    import time

    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text().strip()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no training step logged"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "checkpoint" in err and "Traceback" not in err
    assert (run / "checkpoint.pt").is_file()


def test_a_config_without_preset_overrides_the_preset_given_on_the_command_line(tmp_path):
    import argparse

    from fedsim_app.cli.train import _config
    from fedsim_app.train.config import load_config, preset

    plain = tmp_path / "plain.toml"
    plain.write_text("phase3_epochs = 1\n")
    named = tmp_path / "named.toml"
    named.write_text('preset = "smoke"\nphase3_epochs = 1\n')

    def args(name, path):
        return argparse.Namespace(preset=name, config=str(path), shape_grad=None,
                                  shape_model=None, seed=None, vgg_weights=None)

    for name, want in (("cpu", "cpu"), ("smoke", "smoke"), (None, "cpu")):
        cfg = _config(args(name, plain))
        # the preset's own settings stay (the cpu preset's frame, enhancer levels, sizes)
        assert cfg == preset(want, phase3_epochs=1), name
    assert _config(args("cpu", named)) == preset("smoke", phase3_epochs=1)  # the file's
    assert load_config(plain) == preset("paper", phase3_epochs=1)  # the library's default


def test_quality_report_keeps_what_was_scored_when_interrupted(tmp_path, monkeypatch, capsys):
    from fedsim_app.cli._quality import report_quality
    from fedsim_app.train import quality
    from fedsim_app.train.quality import SiteQuality

    q = SiteQuality("A", 0.9, 0.8, 3.0, 20.0, 1.1, 0.7, 1.0, 0.6, 0.8, 12.0)

    def evaluate(model, folder, **kw):
        if folder == "b":
            raise KeyboardInterrupt
        return q, 4

    monkeypatch.setattr(quality, "evaluate_dataset", evaluate)

    class Model:
        def to(self, device):
            return self

    (tmp_path / "quality.json").write_text("{}")  # an earlier run's: removed first
    written = report_quality({"A": Model(), "B": Model()}, {"A": "a", "B": "b"}, tmp_path,
                             "full")
    assert set(written["sites"]) == {"A"} and written["sites"]["A"]["test_volumes"] == 4
    assert json.loads((tmp_path / "quality.json").read_text()) == written
    out = capsys.readouterr().out
    assert "site A meets every target" in out and "quality: interrupted" in out
