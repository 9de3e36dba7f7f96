"""RenderScheduler: newest state wins, stale results are dropped (except paced live frames
during a drag), the loop never blocks."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.gui


def test_stale_renders_are_dropped(qtbot):
    from fedsim_napari.workers import RenderScheduler

    def slow(state):
        time.sleep(0.15)
        return state

    sched = RenderScheduler(slow, live_interval_ms=None)
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


def test_drag_shows_paced_live_frames(qtbot):
    """A superseded result is shown only when nothing was shown for ``live_interval_ms``
    (a fake clock makes it deterministic); the newest state is always shown last."""
    import threading

    from fedsim_napari.workers import RenderScheduler

    gates = {s: threading.Event() for s in "abcd"}
    started = []

    def render(state):
        started.append(state)
        assert gates[state].wait(timeout=5.0)
        return state

    now = [0.0]
    sched = RenderScheduler(render, live_interval_ms=100.0,
                            clock=lambda: now[0])
    shown = []
    sched.rendered.connect(lambda result, gen, t0: shown.append(result))

    def superseded_then_release(running: str, newer: str, at_s: float) -> None:
        qtbot.waitUntil(lambda: started[-1:] == [running], timeout=5000)
        sched.request(newer)
        now[0] = at_s
        gates[running].set()
        qtbot.waitUntil(lambda: started[-1:] == [newer], timeout=5000)

    sched.request("a")
    superseded_then_release("a", "b", 0.0)  # nothing shown yet: a live frame
    superseded_then_release("b", "c", 0.05)  # 50 ms after "a" was shown: dropped
    superseded_then_release("c", "d", 0.20)  # 200 ms after: a live frame
    gates["d"].set()
    qtbot.waitUntil(lambda: not sched.busy, timeout=5000)
    assert shown == ["a", "c", "d"]
    assert sched.dropped == 1
    assert sched.applied_generation == sched.generation == 4


def test_next_render_waits_for_the_display(qtbot):
    """With ``wait_for_display`` the next render starts on ``displayed()``, or when the
    hold runs out if the consumer never reports."""
    from fedsim_napari.workers import RenderScheduler

    started = []

    def render(state):
        started.append(state)
        return state

    sched = RenderScheduler(render, wait_for_display=True, hold_ms=60_000)
    shown = []
    sched.rendered.connect(lambda result, gen, t0: shown.append(result))
    sched.request("a")
    qtbot.waitUntil(lambda: shown == ["a"], timeout=5000)
    sched.request("b")
    qtbot.wait(100)  # the coalescing timer (1 ms) has long fired: "b" is held back
    assert started == ["a"] and sched.busy
    sched.displayed()
    qtbot.waitUntil(lambda: shown == ["a", "b"], timeout=5000)

    short = RenderScheduler(render, wait_for_display=True, hold_ms=20)
    shown.clear()
    short.rendered.connect(lambda result, gen, t0: shown.append(result))
    short.request("c")
    qtbot.waitUntil(lambda: shown == ["c"], timeout=5000)
    short.request("d")  # nobody calls displayed(): the hold expires
    qtbot.waitUntil(lambda: shown == ["c", "d"], timeout=5000)


def test_event_loop_stays_responsive(qtbot):
    """The render runs off the GUI thread, and the event loop keeps serving while it does:
    the render waits for a GUI-thread timer to release it, so a blocked loop would never
    release it (deterministic, no timing threshold)."""
    import threading

    from qtpy.QtCore import QTimer

    from fedsim_napari.workers import RenderScheduler

    released = threading.Event()
    seen = {}

    def render(state):
        seen["thread"] = threading.current_thread()
        seen["released"] = released.wait(timeout=5.0)
        return state

    sched = RenderScheduler(render)
    shown = []
    sched.rendered.connect(lambda result, gen, t0: shown.append(result))
    sched.request("x")
    qtbot.waitUntil(lambda: "thread" in seen, timeout=5000)  # the render has started
    QTimer.singleShot(20, released.set)  # only a live event loop fires this
    qtbot.waitUntil(lambda: not sched.busy, timeout=8000)
    assert seen["thread"] is not threading.main_thread()
    assert seen["released"], "the event loop was blocked while the render ran"
    assert shown == ["x"]
