"""Paint pacing of the Explorer: layer writes, the window's paint and the 3D canvas apart.

Writing a result into the four layers (~10 ms) and napari's paint of the grid plus the
window's composition (~25 ms under software OpenGL) would otherwise share one event-loop
turn; apart, neither stalls the loop for long. :class:`PaintPacer` holds the window's
views while the layers are written (:meth:`PaintPacer.hold`), lets them paint in a later
turn with the status line (:meth:`PaintPacer.paint`), reports when that paint happened
(the latency the benchmark measures), then draws the meshes in a turn of their own and
only after that lets the next render start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject, QTimer, Signal
from qtpy.QtWidgets import QMainWindow, QWidget

MESH_DELAY_MS = 15
# a real timer (not 0, which Qt posts as an event into the same turn) lets other timers
# and input events run between the layer writes and the paint
PAINT_DELAY_MS = 1
#: a window that never paints (minimised) still moves on after this long
PAINT_FALLBACK_MS = 250


class PaintPacer(QObject):
    """Paces one result at a time from its layer writes to the meshes (see the module).

    Parameters
    ----------
    dock : the dock widget; the views painted are its napari window's central widget
    before_paint : called with the milliseconds since the request, just before the views
        paint (the status line goes into the same paint)
    draw_meshes : called with the mesh payload in a turn after the paint
    finished : called once the 3D canvas had its turn (the next render may start)

    Signals
    -------
    painted(float, bool) : the 2D views painted; milliseconds since the request, and
        whether it was a fill step (latent mode filling in behind a change)
    """

    painted = Signal(float, bool)

    def __init__(self, dock: QWidget, *, before_paint: Callable[[float], None],
                 draw_meshes: Callable[[object], None], finished: Callable[[], None]):
        super().__init__(dock)
        self.dock = dock
        self._before_paint = before_paint
        self._draw_meshes = draw_meshes
        self._finished = finished
        self._requested_at: float | None = None
        self._meshes = None
        self._fill = False
        self._window = None  # the window whose next update request paints the views
        self._fallback = QTimer(self)
        self._fallback.setSingleShot(True)
        self._fallback.setInterval(PAINT_FALLBACK_MS)
        self._fallback.timeout.connect(self._done)

    @property
    def pending(self) -> bool:
        """A paint or a mesh update is still to come."""
        return self._requested_at is not None or self._meshes is not None

    def views_widget(self):
        """The napari window's central widget (canvas and dims), found through Qt's parent
        chain of the dock; None while the dock is not in a napari window."""
        node = self.dock.parent()
        while node is not None and not isinstance(node, QMainWindow):
            node = node.parent()
        return node.centralWidget() if node is not None else None

    def hold(self) -> None:
        """Hold the views' paints while the layers are written."""
        views = self.views_widget()
        if views is not None:
            views.setUpdatesEnabled(False)

    def paint(self, requested_at: float, meshes, fill: bool) -> None:
        """The layers are written: paint the views in the next turn, then ``meshes``
        (None: they did not change)."""
        self._requested_at, self._meshes, self._fill = requested_at, meshes, fill
        QTimer.singleShot(PAINT_DELAY_MS, self._paint_views)

    def release(self) -> None:
        """Never leave napari's canvas with its updates held (the dock hides or closes
        between a layer write and its paint)."""
        views = self.views_widget()
        if views is not None and not views.updatesEnabled():
            views.setUpdatesEnabled(True)

    def _paint_views(self) -> None:
        """Let the 2D views paint, with the status line, in one update of the window."""
        if self._requested_at is None:
            return
        self._before_paint(1000 * (time.perf_counter() - self._requested_at))
        views = self.views_widget()
        if views is None or not views.isVisible():
            self._done()
            return
        if not views.updatesEnabled():
            views.setUpdatesEnabled(True)  # posts the window's update request
        self._window = views.window()
        self._window.installEventFilter(self)
        self._fallback.start()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        # The window's update request (low priority, so after anything posted now) paints
        # the views; a call posted while it runs comes after that paint.
        if obj is self._window and event.type() == QEvent.UpdateRequest:
            obj.removeEventFilter(self)
            self._window = None
            self._fallback.stop()
            QTimer.singleShot(0, self._done)
        return False

    def _done(self) -> None:
        if self._window is not None:  # the fallback fired
            self._window.removeEventFilter(self)
            self._window = None
        requested_at, self._requested_at = self._requested_at, None
        if requested_at is None:
            return
        QTimer.singleShot(MESH_DELAY_MS, self._show_meshes)
        self.painted.emit(1000 * (time.perf_counter() - requested_at), self._fill)

    def _show_meshes(self) -> None:
        if self._meshes is not None:
            self._draw_meshes(self._meshes)
            self._meshes = None
        # the 3D canvas paints in this turn's update request; the next render after it
        QTimer.singleShot(PAINT_DELAY_MS, self._finished)
