"""A small live line plot of a run's losses (QPainter: no plotting library needed)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QWidget

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f")


class LossPlot(QWidget):
    """Each loss on a log scale against the step (row) index; the legend names them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.setMinimumHeight(160)

    def set_series(self, series: dict[str, list[tuple[int, float]]]) -> None:
        self.series = {k: v for k, v in series.items() if v}
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#262930"))
        p.setPen(QColor("#d0d0d0"))
        if not self.series:
            p.drawText(self.rect(), Qt.AlignCenter, "losses appear here as the run logs them")
            return
        # log scale: the losses differ by orders of magnitude
        vals = [math.log10(max(v, 1e-8)) for s in self.series.values() for _, v in s]
        xs = [i for s in self.series.values() for i, _ in s]
        lo, hi = min(vals), max(vals)
        hi = hi if hi > lo else lo + 1.0
        x0, x1 = min(xs), max(max(xs), min(xs) + 1)
        left, top, w, h = 8, 8 + 14 * math.ceil(len(self.series) / 3), self.width() - 16, 0
        h = self.height() - top - 8
        for n, (name, pts) in enumerate(self.series.items()):
            colour = QColor(_COLOURS[n % len(_COLOURS)])
            p.setPen(QPen(colour, 1.5))
            line = [QPointF(left + w * (i - x0) / (x1 - x0),
                            top + h * (1 - (math.log10(max(v, 1e-8)) - lo) / (hi - lo)))
                    for i, v in pts]
            for a, b in zip(line, line[1:], strict=False):
                p.drawLine(a, b)
            p.drawText(left + (n % 3) * (w // 3), 4 + 14 * (n // 3) + 10,
                       f"{name} {pts[-1][1]:.3g}")
        p.setPen(QColor("#909090"))
        p.drawText(self.rect().adjusted(0, 0, -4, -2), Qt.AlignRight | Qt.AlignBottom,
                   f"log10 range {lo:.1f}..{hi:.1f}")
