"""The export panel runs `fedsim export` as a separate process: progress with cases/min,
Cancel keeps complete cases, a summary with the folder and the novelty table, errors as
notifications."""

from __future__ import annotations

import pytest

from fedsim_napari import export_run

pytestmark = pytest.mark.gui


def _panel(qtbot, tmp_path, n):
    from fedsim_napari._qt.export import ExportWidget

    widget = ExportWidget()
    qtbot.addWidget(widget)
    widget.checkpoint.setText("atlas")
    widget.n.setValue(n)
    widget.size.setValue(32)
    widget.out.setText(str(tmp_path / "out"))
    return widget


def test_export_shows_summary_and_novelty(qtbot, tmp_path):
    widget = _panel(qtbot, tmp_path, 2)
    widget.export_button.click()
    assert not widget.export_button.isEnabled()
    qtbot.waitUntil(lambda: widget.phase != "exporting", timeout=300_000)
    assert widget.phase == "done", widget.job.log
    folder = export_run.dataset_folder(tmp_path / "out")
    assert folder is not None and str(folder) in widget.summary.text()
    assert widget.novelty.rowCount() == 2
    assert "volumes/min" in widget.summary.text() and "novelty" in widget.summary.text()
    assert widget.novelty.horizontalHeaderItem(0).text() == "case_id"
    assert widget.progress.value() == 2


def test_cancel_keeps_complete_cases(qtbot, tmp_path):
    widget = _panel(qtbot, tmp_path, 200)
    widget.export_button.click()
    qtbot.waitUntil(lambda: widget.progress.value() >= 1, timeout=300_000)
    assert "cases/min" in widget.status.text() or widget.progress.value() == 1
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.phase != "exporting", timeout=300_000)
    assert widget.phase == "cancelled", widget.job.log
    assert "complete cases kept" in widget.status.text()
    folder = export_run.dataset_folder(tmp_path / "out")
    kept = list((folder / "labelsTr").glob("*.nii.gz"))
    assert 1 <= len(kept) < 200
    assert len(kept) == widget.novelty.rowCount()


def test_bad_site_reaches_the_user(qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    n = len(notification_manager.records)
    widget = _panel(qtbot, tmp_path, 2)
    widget.size.setValue(40)  # not a multiple of 16
    widget.export_button.click()
    qtbot.waitUntil(lambda: widget.phase != "exporting", timeout=300_000)
    assert widget.phase == "failed"
    messages = [str(r.message) for r in notification_manager.records[n:]]
    assert any("Export (fedsim export) failed" in m for m in messages), messages
    assert not any("Traceback" in m for m in messages)


def test_rate_and_time_left():
    r = export_run.Rate.measure(done=7, total=10, first_done=4, elapsed_s=30.0)
    assert r.per_minute == pytest.approx(6.0) and r.seconds_left == pytest.approx(30.0)
    assert r.text() == "7/10 cases · 6.0 cases/min · 30 s left"
    assert export_run.Rate.measure(4, 10, 4, 5.0).text() == "4/10 cases"
    text = "export site A:  33%|###3      | 1/3 [00:02<00:04]\rexport site A: 100%|####| 3/3"
    assert export_run.parse_cases(text) == (3, 3)
