"""The federated panel runs `fedsim federate` (three sites, in-process) as a separate
process, shows per-round per-site losses and site cards, and stops on request; its
Qt-free model builds the command and reads the round log."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    from fedsim_app.cohort.generate import generate_cohort

    root = tmp_path_factory.mktemp("fedcohort")
    generate_cohort(root, sites="A,B,C", cases=4, size=32, seed=0)
    return root


def test_settings_build_the_cli_command():
    from fedsim_napari.federated_run import FederatedSettings

    s = FederatedSettings("co", "run", ("A", "B"), rounds=4, preset="smoke", labels=2,
                          dp_epsilon=8, runtime="flower")
    assert s.args() == ["federate", "--sites", "A,B", "--cohort", "co", "--preset",
                        "smoke", "--runtime", "flower", "--out", "run", "--rounds", "4",
                        "--labels", "A=2", "--labels", "B=2", "--dp-epsilon", "8"]
    assert s.args(resume=True) == ["federate", "--out", "run", "--resume"]


def test_settings_ask_for_views_in_process_only():
    from fedsim_napari.federated_run import FederatedSettings

    assert FederatedSettings("co", "run", view_every=3).args()[-2:] == ["--view-every", "3"]
    assert "--view-every" not in FederatedSettings("co", "run", view_every=0).args()
    assert "--view-every" not in FederatedSettings("co", "run", runtime="flower").args()


def _fake_views(folder, rounds=(0, 2, 4)):
    """A run folder with four rounds logged and views after ``rounds``."""
    import numpy as np

    from fedsim_app.train.runlog import write_sample_grid

    rows = [{"round": r, "phase": 1 if r < 2 else 2, "accepted": ["A"], "missing": [],
             "rejected": {}, "metrics": {"A": {"mse": 0.1}}, "bytes_sent": {}}
            for r in range(4)]
    (folder / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "views").mkdir()
    for r in rounds:
        img = np.full((8, 8), r / 10.0)
        write_sample_grid(folder / "views" / f"round_{r:05d}.png", [("site A", [img])],
                          ["gray"])


def test_read_run_lists_views_with_captions(tmp_path):
    from fedsim_napari.federated_run import read_run

    _fake_views(tmp_path)
    (tmp_path / "views" / "round_x.png").write_bytes(b"")  # not a view: passed over
    view = read_run(tmp_path, ("A",))
    assert [r for r, _ in view.views] == [0, 2, 4]
    assert "before the first round" in view.view_caption(0)
    assert "after round 2, phase 1" in view.view_caption(1)
    assert view.view_caption(2).startswith("view 3/3: after round 4, phase 2 — the same "
                                           "latent through A (rows)")


@pytest.mark.gui
def test_panel_view_slider_follows_the_newest_until_moved_back(qtbot, tmp_path):
    from fedsim_napari._qt.federated import FederatedWidget

    widget = FederatedWidget()
    qtbot.addWidget(widget)
    widget.out.setText(str(tmp_path))
    _fake_views(tmp_path, rounds=(0, 2))
    widget.refresh()
    assert widget.view_slider.maximum() == 1 and widget.view_slider.value() == 1
    assert "after round 2" in widget.view_caption.text()
    assert not widget.view_image.pixmap().isNull()
    widget.view_slider.setValue(0)  # the user looks back
    assert "before the first round" in widget.view_caption.text()
    import numpy as np

    from fedsim_app.train.runlog import write_sample_grid

    write_sample_grid(tmp_path / "views" / "round_00004.png",
                      [("site A", [np.zeros((8, 8))])], ["gray"])
    widget.refresh()  # a new view: the slider grows, but stays where the user put it
    assert widget.view_slider.maximum() == 2 and widget.view_slider.value() == 0
    widget.view_slider.setValue(2)
    widget.refresh()
    assert "after round 4" in widget.view_caption.text()


def test_read_run_cards_and_series(tmp_path):
    from fedsim_napari.federated_run import read_run

    assert read_run(tmp_path / "none", ("A",)).done == 0
    rows = [
        {"round": 0, "accepted": ["A", "B"], "missing": [], "rejected": {},
         "metrics": {"A": {"iou": 0.5, "mse": 0.2}, "B": {"iou": 0.6}},
         "bytes_sent": {"A": 8, "B": 8}, "dp_epsilon": 1.5},
        {"round": 1, "accepted": ["B"], "missing": ["A"], "rejected": {},
         "metrics": {"B": {"iou": 0.7}}, "bytes_sent": {"B": 4_000_000}, "dp_epsilon": 2.0},
    ]
    (tmp_path / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                           + '{"round": 2, "acc')  # a line being written
    (tmp_path / "federation.json").write_text(json.dumps(
        {"sites": ["A", "B"], "labels": {"A": 2, "B": 2}, "sizes": {"A": [2, 3]}}))
    view = read_run(tmp_path, ("A", "B"))
    assert view.done == 2 and view.dp_epsilon == 2.0
    assert "2 labelled + 3 unlabelled" in view.cards["A"].text()
    assert "2 labelled\n" in view.cards["B"].text()  # no count recorded: the budget
    assert view.cards["A"].status == "dropped" and view.cards["A"].rounds_done == 1
    assert view.cards["B"].status == "trained" and view.cards["B"].bytes_sent == 4_000_000
    assert "4.00 MB" in view.cards["B"].text() and "iou 0.7" in view.cards["B"].text()
    assert view.loss_series() == {"A mse": [(0, 0.2)]}  # iou is a score, not a loss


@pytest.mark.gui
@pytest.mark.slow
def test_panel_runs_three_sites_shows_losses_and_stops(qtbot, tiny_cohort, tmp_path):
    from fedsim_napari._qt.federated import FederatedWidget

    widget = FederatedWidget()
    qtbot.addWidget(widget)
    widget.resize(700, 900)
    widget.show()
    run = tmp_path / "run"
    widget.cohort.setText(str(tiny_cohort))
    widget.rounds.setValue(60)
    widget.preset.setCurrentText("smoke")
    widget.labels.setValue(2)
    widget.out.setText(str(run))
    # the panel has no matrix switch: the smoke preset's first matrix build is the slow part
    widget.settings = _no_matrix(widget.settings)
    widget.start()
    assert widget.phase == "running" and not widget.start_button.isEnabled()
    qtbot.waitUntil(lambda: (run / "rounds.jsonl").is_file()
                    and len((run / "rounds.jsonl").read_text().splitlines()) >= 2,
                    timeout=300_000)
    widget.refresh()
    assert widget.progress.value() >= 2 and widget.progress.maximum() == 60
    assert set(widget.cards) == {"A", "B", "C"}
    assert all("training" in c.text() or "trained" in c.text()
               for c in widget.cards.values())
    assert {k.split()[0] for k in widget.plot.series} == {"A", "B", "C"}
    # the panel asked for views every 10 rounds: the untrained model's is there already
    assert (run / "views" / "round_00000.png").is_file()
    assert "before the first round" in widget.view_caption.text()
    _screenshot(widget, tmp_path)
    with qtbot.waitSignal(widget.job.finished, timeout=60_000):
        widget.stop()
    assert widget.phase == "stopped" and widget.resume_button.isEnabled()
    assert len((run / "rounds.jsonl").read_text().splitlines()) < 60


def test_a_finished_run_shows_each_sites_held_out_figures(qtbot, tmp_path):
    import json

    from fedsim_napari._qt.federated import FederatedWidget

    widget = FederatedWidget()
    qtbot.addWidget(widget)
    widget.out.setText(str(tmp_path))
    figures = {"shape_iou": 0.9, "shape_dice": 0.8, "mat_hu_err": 3.0, "enh_hu_err": 20.0,
               "noise_ratio": 1.1, "c2st": 0.8, "c2st_coarse": 1.0, "test_volumes": 4}
    (tmp_path / "quality.json").write_text(json.dumps(
        {"effort": "full", "sites": {"A": figures, "B": {**figures, "c2st": 0.6}}}))
    widget._finished(0, False)
    done, a, b = widget.status.text().splitlines()
    assert done == f"done: {tmp_path}"
    assert a.startswith("Site A, held-out quality") and a.endswith("misses c2st")
    assert b.startswith("Site B") and b.endswith("every target met")


def _no_matrix(settings_fn):
    import dataclasses

    return lambda: dataclasses.replace(settings_fn(), no_matrix=True)


def _screenshot(widget, tmp_path):
    import os

    target = os.environ.get("FEDSIM_SCREENSHOT_DIR")
    path = (tmp_path if not target else __import__("pathlib").Path(target)) / \
        "federated_panel.png"
    assert widget.grab().save(str(path))
