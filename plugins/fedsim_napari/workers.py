"""Work off the GUI thread, shared by every panel: renders and long jobs.

:class:`RenderScheduler`: latest-state-wins rendering off the event loop.

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

    @property
    def current(self) -> bool:
        """The newest request's result is the one shown (none newer waits or runs)."""
        return self._pending is None and self.applied_generation == self.generation

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


def notify_error(message: str) -> None:
    """Show ``message`` as a napari error notification (no traceback)."""
    from napari.utils.notifications import show_error

    show_error(message)


class LongJob(QObject):
    """A long computation in a napari thread worker, with progress, cancel and errors.

    ``fn(*args)`` is a plain function, or a generator that yields progress as
    ``(done, total, text)`` and returns its result; only a generator can be cancelled
    (between two yields). A raised exception becomes ``failed`` and, with ``notify``, a
    napari notification naming ``title``: never a bare traceback.

    Signals
    -------
    progress(done, total, text) ; returned(result) ; failed(message) ; finished()
    """

    progress = Signal(int, int, str)
    returned = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, title: str, fn, *args, notify: bool = True, parent=None):
        super().__init__(parent)
        self.title = title
        self._fn, self._args = fn, args
        self.notify = notify
        self.cancelled = False
        self.running = False
        self._worker = None

    def start(self) -> LongJob:
        import inspect

        from napari.qt.threading import create_worker

        fn, args = self._fn, self._args
        if inspect.isgeneratorfunction(fn):
            def run():
                try:
                    result = yield from fn(*args)
                except Exception as exc:  # noqa: BLE001 - becomes a notification
                    return RenderFailure(exc)
                return result
        else:
            def run():
                try:
                    return fn(*args)
                except Exception as exc:  # noqa: BLE001 - becomes a notification
                    return RenderFailure(exc)

        worker = create_worker(run, _start_thread=False)
        if hasattr(worker, "yielded"):
            worker.yielded.connect(lambda p: self.progress.emit(int(p[0]), int(p[1]), str(p[2])))
        worker.returned.connect(self._returned)
        worker.finished.connect(self._finished)
        self._worker = worker
        self.running = True
        # Qt's connections do not hold this Python object: a caller that keeps no
        # reference must still get its signals
        _RUNNING.add(self)
        keep_alive(worker)
        worker.start()
        return self

    def cancel(self) -> None:
        """Stop at the next progress yield (a plain function runs to its end)."""
        self.cancelled = True
        if self._worker is not None and hasattr(self._worker, "quit"):
            self._worker.quit()

    def _returned(self, out) -> None:
        if isinstance(out, RenderFailure):
            message = f"{self.title} failed: {out.exc}"
            self.failed.emit(message)
            if self.notify:
                notify_error(message)
            return
        self.returned.emit(out)

    def _finished(self) -> None:
        self.running = False
        self._worker = None
        self.finished.emit()
        _RUNNING.discard(self)
