"""The training panel runs `fedsim train` as a separate process: validate first, live
metrics, pause (checkpoint, exit 130), resume (--resume), cancel, errors as notifications."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    from fedsim_app.cohort.generate import generate_cohort

    root = tmp_path_factory.mktemp("cohort")
    generate_cohort(root, sites="A", cases=5, size=32, seed=0)
    return root


def _panel(qtbot, cohort, run, config_text, tmp_path):
    from fedsim_napari._qt.training import TrainingWidget

    widget = TrainingWidget()
    qtbot.addWidget(widget)
    cfg = tmp_path / "train.toml"
    cfg.write_text(config_text)
    widget.data.setText(str(cohort))
    widget.site.setCurrentText("A")
    widget.labels.setValue(2)
    widget.preset.setCurrentText("smoke")
    widget.config.setText(str(cfg))
    widget.out.setText(str(run))
    return widget


def test_pause_resume_cancel_of_a_smoke_run(qtbot, tiny_cohort, tmp_path):
    from fedsim_napari import run_folder

    run = tmp_path / "run"
    widget = _panel(qtbot, tiny_cohort, run,
                    'preset = "smoke"\nphase1_epochs = 200\ncoarse_matrix = false\n', tmp_path)
    assert not widget.pause_button.isEnabled() and not widget.resume_button.isEnabled()
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.phase == "training", timeout=300_000)
    assert "--preset smoke" in widget.job.command_line
    qtbot.waitUntil(lambda: len(run_folder.read_metrics(run)) >= 2, timeout=300_000)
    widget.refresh()
    assert widget.plot.series  # the loss curves have points
    widget.pause_button.click()
    qtbot.waitUntil(lambda: widget.phase == "paused", timeout=300_000)
    assert (run / "checkpoint.pt").is_file()
    assert widget.checkpoints.count() >= 1 and widget.resume_button.isEnabled()
    n = len(run_folder.read_metrics(run))
    assert widget.bars[0].value() >= 1  # phase 1's bar followed the command's progress

    widget.resume_button.click()
    qtbot.waitUntil(lambda: widget.phase == "training", timeout=10_000)
    assert widget.job.args[-1] == "--resume"
    qtbot.waitUntil(lambda: len(run_folder.read_metrics(run)) > n or widget.phase != "training",
                    timeout=300_000)
    assert widget.phase == "training", widget.job.log
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.phase == "cancelled", timeout=60_000)
    assert "stays" in widget.status.text() and widget.resume_button.isEnabled()


def test_bars_say_which_phases_ran(qtbot):
    from fedsim_napari._qt.training import TrainingWidget

    widget = TrainingWidget()
    qtbot.addWidget(widget)
    assert [b.text() for b in widget.bars] == [f"phase {p}: –" for p in (1, 2, 3, 4)]
    # one chunk may end a phase and start the next: each bar gets its own
    widget._output("phase 1: 100%|##########| 3/3 [00:01<00:00]\n"
                   "phase 3:  50%|#####     | 2/4 [00:01<00:01]\n")
    widget.set_phase("done")
    assert [b.text() for b in widget.bars] == [
        "phase 1: 3/3", "phase 2: no steps seen", "phase 3: 2/4", "phase 4: no steps seen"]
    widget._reset_bars()  # a new start
    assert widget.bars[0].text() == "phase 1: –" and widget.bars[0].value() == 0


def test_a_finished_run_shows_its_held_out_figures(qtbot, tiny_cohort, tmp_path):
    run = tmp_path / "run"
    widget = _panel(qtbot, tiny_cohort, run,
                    'preset = "smoke"\nphase1_epochs = 1\nphase2_epochs = 1\n'
                    'phase3_epochs = 1\nslices_per_step = 2\ncoarse_matrix = false\n',
                    tmp_path)
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.phase in ("done", "failed"), timeout=300_000)
    assert widget.phase == "done", widget.job.log
    assert "quality: scoring" in widget.job.stdout
    assert widget.quality.text().startswith("Site A, held-out quality (1 test volume, quick): "
                                            "shape IoU ")
    assert "quick: rough figures" in widget.quality.text()
    widget.set_phase("training")  # a new run: the old figures go
    assert widget.quality.text() == ""
    widget._output("quality: scoring the model on cohort's test split (full)…\n")
    assert "scoring the model" in widget.status.text()


def test_loading_a_checkpoint_sets_the_shared_state(qtbot, tmp_path):
    from fedsim_napari._qt.training import TrainingWidget

    widget = TrainingWidget()
    qtbot.addWidget(widget)
    widget.out.setText(str(tmp_path))
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    widget.refresh()
    seen = []
    widget.app_state.events.checkpoint.connect(seen.append)
    widget.load_button.click()
    assert seen == [str(tmp_path / "checkpoint.pt")]


def test_a_failing_run_reaches_the_user(qtbot, tiny_cohort, tmp_path):
    from napari.utils.notifications import notification_manager

    n = len(notification_manager.records)
    widget = _panel(qtbot, tiny_cohort, tmp_path / "run",
                    'preset = "smoke"\nno_such_setting = 3\n', tmp_path)
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.phase == "failed", timeout=300_000)
    messages = [str(r.message) for r in notification_manager.records[n:]]
    assert any("Training (fedsim train) failed" in m and "no_such_setting" in m
               for m in messages), messages
    assert not any("Traceback" in m for m in messages)
    assert widget.start_button.isEnabled()


def test_bad_data_is_listed_and_nothing_trains(qtbot, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    widget = _panel(qtbot, tmp_path, tmp_path / "run", 'preset = "smoke"\n', tmp_path)
    widget.source.setCurrentText("dataset folder")
    widget.data.setText(str(empty))
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.phase == "failed", timeout=300_000)
    assert "The data has problems" in widget.problems.text()
    assert str(empty) in widget.problems.text()
    assert not (tmp_path / "run").exists()


def test_preset_and_epochs_per_phase_reach_the_command(qtbot, tmp_path):
    import tomllib
    from pathlib import Path

    from fedsim_app.train.config import load_config, preset
    from fedsim_napari._qt.training import TrainingWidget

    widget = TrainingWidget()
    qtbot.addWidget(widget)
    widget.out.setText(str(tmp_path / "runs" / "site-A"))
    widget.preset.setCurrentText("smoke")
    assert widget._train_args(False)[-2:] == ["--preset", "smoke"]  # nothing else to say
    widget.epochs[0].setValue(3)
    widget.epochs[2].setValue(1)
    args = widget._train_args(False)
    config = args[args.index("--config") + 1]
    assert config == str(tmp_path / "runs" / "site-A.train.toml")
    assert tomllib.loads(Path(config).read_text()) == {
        "preset": "smoke", "phase1_epochs": 3, "phase3_epochs": 1}
    cfg = load_config(config)  # what `fedsim train` runs with: the smoke preset, not paper
    smoke = preset("smoke")
    assert (cfg.phase1_epochs, cfg.phase2_epochs, cfg.phase3_epochs, cfg.label_size) == (
        3, smoke.phase2_epochs, 1, smoke.label_size)
    assert widget._train_args(True)[-1] == "--resume"  # the run's own settings


def test_an_unreadable_config_is_said_before_anything_runs(qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    from fedsim_napari._qt.training import TrainingWidget

    widget = TrainingWidget()
    qtbot.addWidget(widget)
    bad = tmp_path / "bad.toml"
    bad.write_text("= oops\n")
    widget.config.setText(str(bad))
    widget.out.setText(str(tmp_path / "run"))
    n = len(notification_manager.records)
    widget.start_button.click()
    assert widget.phase == "failed" and widget.job is None
    assert "bad.toml" in widget.status.text()
    assert any("bad.toml" in str(r.message) for r in notification_manager.records[n:])
