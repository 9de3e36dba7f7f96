"""LongJob: progress, cancel between steps, errors as a notification without traceback."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.gui


def test_progress_and_result(qtbot):
    from fedsim_napari.workers import LongJob

    def steps(n):
        for i in range(n):
            yield i + 1, n, f"step {i + 1}"
        return "done"

    job = LongJob("counting", steps, 3)
    seen, out = [], []
    job.progress.connect(lambda d, t, s: seen.append((d, t, s)))
    job.returned.connect(out.append)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert out == ["done"] and not job.running


def test_cancel_stops_between_steps(qtbot):
    from fedsim_napari.workers import LongJob

    done = []

    def slow():
        for i in range(100):
            time.sleep(0.02)
            done.append(i)
            yield i, 100, ""
        return "never"

    job = LongJob("slow", slow)
    out = []
    job.returned.connect(out.append)
    job.progress.connect(lambda d, *_: job.cancel() if d == 2 else None)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    assert job.cancelled and len(done) < 100 and out == []


def test_error_becomes_a_notification(qtbot):
    from napari.utils.notifications import notification_manager

    from fedsim_napari.workers import LongJob

    def broken():
        raise OSError("disk full at /tmp/x")

    n = len(notification_manager.records)
    job = LongJob("Writing the cases", broken)
    failed = []
    job.failed.connect(failed.append)
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    assert failed == ["Writing the cases failed: disk full at /tmp/x"]
    messages = [str(r.message) for r in notification_manager.records[n:]]
    assert failed[0] in messages
    assert not any("Traceback" in m for m in messages)
