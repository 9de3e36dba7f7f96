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
    """The render runs off the GUI thread, and the event loop keeps serving while it does:
    the render waits for a GUI-thread timer to release it, so a blocked loop would never
    release it (deterministic, no timing threshold)."""
    import threading

    from qtpy.QtCore import QTimer

    from fedsim_napari.explorer_worker import RenderScheduler

    released = threading.Event()
    seen = {}

    def render(state):
        seen["thread"] = threading.current_thread()
        seen["released"] = released.wait(timeout=5.0)
        return state

    sched = RenderScheduler(render, coalesce_ms=1)
    shown = []
    sched.rendered.connect(lambda result, gen, t0: shown.append(result))
    sched.request("x")
    qtbot.waitUntil(lambda: "thread" in seen, timeout=5000)  # the render has started
    QTimer.singleShot(20, released.set)  # only a live event loop fires this
    qtbot.waitUntil(lambda: not sched.busy, timeout=8000)
    assert seen["thread"] is not threading.main_thread()
    assert seen["released"], "the event loop was blocked while the render ran"
    assert shown == ["x"]
