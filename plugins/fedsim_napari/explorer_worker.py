"""Latest-state-wins rendering off the event loop.

A request starts rendering at once when the worker is free, so the render computes while
the GUI thread repaints the slider that moved. One worker thread renders at a time, and
the newest pending state starts as soon as the worker is free, so states asked for while
a render runs are skipped except the last. A result whose state was superseded while it
rendered is dropped, except as a *live frame*: when the views have not changed for
``live_interval_ms``, it is shown while the newest state renders. So a continuous drag
still animates (at most one frame per ``live_interval_ms``; about six a second on a 2-core
CPU) without the GUI thread painting every result, and the UI never waits for a render.

With ``wait_for_display``, the next render starts only once the consumer says the last
result is on screen (:meth:`RenderScheduler.displayed`), or after ``hold_ms``: on a CPU
without a GPU, OpenGL paints and renders would otherwise compete for the same cores.
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
    rendered(result, generation, requested_at) : a result to show (GUI thread): the
        newest state's, or a live frame
    failed(state, RenderFailure) : the newest request raised

    Parameters
    ----------
    live_interval_ms : show a superseded result when nothing was shown for this long
        (None: show the newest state only)
    wait_for_display : hold the next render until :meth:`displayed` (or ``hold_ms``)
    clock : seconds, monotonic (tests pass their own)
    """

    rendered = Signal(object, int, float)
    failed = Signal(object, object)

    def __init__(self, render_fn, *,
                 live_interval_ms: float | None = 100.0, wait_for_display: bool = False,
                 hold_ms: int = 500, clock=time.perf_counter, parent=None):
        super().__init__(parent)
        self._render_fn = render_fn
        self.live_interval_ms = live_interval_ms
        self._clock = clock
        self._shown_at: float | None = None
        self.wait_for_display = wait_for_display
        self._held = False
        self._hold = QTimer(self)  # a consumer that never reports cannot stall rendering
        self._hold.setSingleShot(True)
        self._hold.setInterval(hold_ms)
        self._hold.timeout.connect(self.displayed)
        self.generation = 0  # newest request
        self.applied_generation = 0  # newest result shown
        self.dropped = 0  # superseded results not shown
        self._pending = None  # (generation, state, requested_at)
        self._worker = None

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._pending is not None

    def request(self, state) -> int:
        """Ask for ``state``; returns its generation."""
        self.generation += 1
        self._pending = (self.generation, state, time.perf_counter())
        self._launch()  # no-op while a render runs or the display is held
        return self.generation

    def displayed(self) -> None:
        """The consumer has put the last result on screen: the next render may start."""
        self._hold.stop()
        self._held = False
        self._launch()

    def _launch(self) -> None:
        if self._worker is not None or self._pending is None or self._held:
            return  # launched when the running worker finishes, or on displayed()
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
        self._hold.stop()
        self._pending = None
        self.generation += 1  # whatever is running is stale now

    def _live_frame_due(self, gen: int) -> bool:
        """Whether a superseded result ``gen`` is worth showing while the newest renders."""
        if self.live_interval_ms is None or gen <= self.applied_generation:
            return False
        return (self._shown_at is None
                or 1000 * (self._clock() - self._shown_at) >= self.live_interval_ms)

    def _on_returned(self, out) -> None:
        gen, state, t0, result = out
        failed = isinstance(result, RenderFailure)
        if gen != self.generation and (failed or not self._live_frame_due(gen)):
            self.dropped += 1
            return
        self.applied_generation = gen
        if failed:
            self.failed.emit(state, result)
            return
        self._shown_at = self._clock()
        if self.wait_for_display:
            self._held = True
            self._hold.start()
        self.rendered.emit(result, gen, t0)

    def _on_finished(self) -> None:
        self._worker = None
        if self._pending is not None:
            self._launch()
