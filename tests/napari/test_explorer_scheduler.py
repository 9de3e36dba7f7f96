"""RenderScheduler: newest state wins, stale results are dropped, the loop never blocks."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.gui


def test_stale_renders_are_dropped(qtbot):
    from fedsim_napari.explorer_worker import RenderScheduler

    def slow(state):
        time.sleep(0.15)
        return state

    sched = RenderScheduler(slow, coalesce_ms=1)
    shown = []
    sched.rendered.connect(lambda result, gen, t0: shown.append(result))
    sched.request("first")
    qtbot.waitUntil(lambda: sched._worker is not None, timeout=2000)  # first is rendering
    for s in ("second", "third", "fourth"):
        sched.request(s)
    qtbot.waitUntil(lambda: not sched.busy, timeout=5000)
    assert shown == ["fourth"]  # "first" came back stale, second/third were coalesced
    assert sched.dropped == 1
    assert sched.applied_generation == sched.generation == 4


def test_event_loop_stays_responsive(qtbot):
    from qtpy.QtCore import QTimer

    from fedsim_napari.explorer_worker import RenderScheduler

    def slow(state):
        time.sleep(0.3)
        return state

    sched = RenderScheduler(slow, coalesce_ms=1)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    sched.request("x")
    qtbot.waitUntil(lambda: not sched.busy, timeout=5000)
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(ticks) > 10 and max(gaps) < 0.1
