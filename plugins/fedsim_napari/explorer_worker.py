"""Latest-state-wins rendering off the event loop.

Slider events are coalesced by a short timer; one worker thread renders at a time; a
result whose generation is older than the newest request is dropped, and the newest
pending state starts as soon as the worker is free. So the UI never waits for a render
and never shows a stale one.
"""

from __future__ import annotations

import time
import traceback

from qtpy.QtCore import QObject, QTimer, Signal

# Running workers are kept alive here until they finish: a dock closed mid-render must not
# take the worker's Qt signals with it (the thread would emit into a deleted object).
_RUNNING: set = set()


def keep_alive(worker) -> None:
    """Hold ``worker`` until its ``finished`` signal."""
    _RUNNING.add(worker)
    worker.finished.connect(lambda: _RUNNING.discard(worker))


class RenderFailure:
    """What a render raised, carried back to the GUI thread as a value (so napari's own
    error relay does not print a bare traceback)."""

    def __init__(self, exc: BaseException):
        self.exc = exc
        self.trace = "".join(traceback.format_exception(exc))


class RenderScheduler(QObject):
    """Run ``render_fn(state)`` in napari thread workers, newest request only.

    Signals
    -------
    rendered(result, generation, requested_at) : a fresh result (GUI thread)
    failed(state, RenderFailure) : the newest request raised
    """

    rendered = Signal(object, int, float)
    failed = Signal(object, object)

    def __init__(self, render_fn, *, coalesce_ms: int = 2, parent=None):
        super().__init__(parent)
        self._render_fn = render_fn
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(coalesce_ms)
        self._timer.timeout.connect(self._launch)
        self.generation = 0  # newest request
        self.applied_generation = 0  # newest result shown
        self.dropped = 0  # results thrown away because a newer request existed
        self._pending = None  # (generation, state, requested_at)
        self._worker = None

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._pending is not None

    def request(self, state) -> int:
        """Ask for ``state``; returns its generation."""
        self.generation += 1
        self._pending = (self.generation, state, time.perf_counter())
        self._timer.start()
        return self.generation

    def _launch(self) -> None:
        if self._worker is not None or self._pending is None:
            return  # the running worker launches the pending state when it finishes
        from napari.qt.threading import create_worker

        gen, state, t0 = self._pending
        self._pending = None
        worker = create_worker(self._run, gen, state, t0, _start_thread=False)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        keep_alive(worker)
        worker.start()

    def _run(self, gen, state, t0):
        try:
            return gen, state, t0, self._render_fn(state)
        except Exception as exc:  # noqa: BLE001 - shown to the user as a notification
            return gen, state, t0, RenderFailure(exc)

    def close(self) -> None:
        """Stop scheduling; a render in flight finishes and is ignored."""
        self._timer.stop()
        self._pending = None
        self.generation += 1  # whatever is running is stale now

    def _on_returned(self, out) -> None:
        gen, state, t0, result = out
        if gen != self.generation:
            self.dropped += 1
            return
        if isinstance(result, RenderFailure):
            self.applied_generation = gen
            self.failed.emit(state, result)
            return
        self.applied_generation = gen
        self.rendered.emit(result, gen, t0)

    def _on_finished(self) -> None:
        self._worker = None
        if self._pending is not None:
            self._launch()
