"""The Explorer's slider panels: the shape model's modes and rigid parameters in [-1, 1],
or a latent's principal directions in standard deviations."""

from __future__ import annotations

import math

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QGridLayout, QLabel, QSlider, QToolButton, QWidget

STEPS = 100  # slider ticks per unit: 0.01 resolution on [-1, 1]
MODES_GROUP = "Shape modes"
POSE_GROUP = "Pose and size"


def parameter_labels(ssm) -> list[str]:
    """Display names: modes with their explained variance, rigid ones with their range."""
    ratio = ssm.explained_variance_ratio()
    r = ssm.ranges
    deg = math.degrees(r.rotation_rad)
    names = [f"Mode {i + 1} ({100 * ratio[i]:.1f}%)" for i in range(14)]
    names += [f"Rotate {a} (±{deg:.0f}°)" for a in "xyz"]
    names += [f"Shift {a} (±{r.translation_mm:.0f} mm)" for a in "xyz"]
    names += [f"Log scale (±{r.log_scale:g})"]
    return names


class ParameterSliders(QWidget):
    """Labelled sliders in collapsible groups (by default: the shape modes, then the 7
    pose and size parameters); ``changed`` and ``moved(index, value)`` fire on user moves,
    not on :meth:`set_values`.

    Parameters
    ----------
    labels : one name per slider
    groups : ``(title, number of sliders)`` per group, in order
    limit : the sliders span ``[-limit, limit]`` in steps of 0.01

    On a 1080-pixel screen the dock cannot show all 21 rows beside the 3D view; folding a
    group (its header is a button) brings the other one into view without scrolling.
    """

    changed = Signal()
    moved = Signal(int, float)

    def __init__(self, labels: list[str], parent=None, *, groups=None, limit: float = 1.0):
        super().__init__(parent)
        if groups is None:
            groups = ((MODES_GROUP, len(labels) - 7), (POSE_GROUP, 7))
        if sum(n for _, n in groups) != len(labels):
            raise ValueError(f"{len(labels)} slider names for groups {groups}")
        self.limit = float(limit)
        # one grid for both groups, so their sliders line up; a folded group hides its
        # rows' widgets and the grid gives those rows no height
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setVerticalSpacing(1)
        layout.setColumnStretch(1, 1)
        self.sliders: list[QSlider] = []
        self._values: list[QLabel] = []
        #: group name → (header button, the widgets of its rows)
        self.groups: dict[str, tuple[QToolButton, list[QWidget]]] = {}
        row, start = 0, 0
        for title, n in groups:
            texts, start = labels[start:start + n], start + n
            header = QToolButton()
            header.setText(title)
            header.setCheckable(True)
            header.setChecked(True)
            header.setArrowType(Qt.DownArrow)
            header.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
            header.setAutoRaise(True)
            header.setToolTip(f"fold or open the {title.lower()} sliders")
            header.setStyleSheet("QToolButton { font-weight: bold; }")
            layout.addWidget(header, row, 0, 1, 3)
            row += 1
            widgets: list[QWidget] = []
            for text in texts:
                widgets += self._add_row(layout, row, text)
                row += 1
            header.toggled.connect(lambda on, h=header, ws=widgets: self._fold(h, ws, on))
            self.groups[title] = (header, widgets)
        layout.setRowStretch(row, 1)

    def _add_row(self, grid: QGridLayout, row: int, text: str) -> list[QWidget]:
        slider = QSlider(Qt.Horizontal)
        slider.setRange(-round(STEPS * self.limit), round(STEPS * self.limit))
        slider.setObjectName(f"param_{len(self.sliders)}")
        slider.setMinimumWidth(80)
        value = QLabel("+0.00")
        # fixed width: a new value must not re-layout the dock (and repaint its 3D view)
        value.setFixedWidth(value.fontMetrics().horizontalAdvance("+0.00") + 14)
        index = len(self.sliders)
        slider.valueChanged.connect(lambda v, lab=value, i=index: self._moved(i, v, lab))
        name = QLabel(text)
        name.setToolTip(text)
        grid.addWidget(name, row, 0)
        grid.addWidget(slider, row, 1)
        grid.addWidget(value, row, 2)
        self.sliders.append(slider)
        self._values.append(value)
        return [name, slider, value]

    @staticmethod
    def _fold(header: QToolButton, widgets: list[QWidget], expanded: bool) -> None:
        for w in widgets:
            w.setVisible(expanded)
        header.setArrowType(Qt.DownArrow if expanded else Qt.RightArrow)

    def expanded(self, group: str) -> bool:
        return self.groups[group][0].isChecked()

    def set_expanded(self, group: str, expanded: bool) -> None:
        """Open or fold ``group`` (:data:`MODES_GROUP` or :data:`POSE_GROUP`)."""
        self.groups[group][0].setChecked(expanded)

    def _moved(self, index: int, v: int, label: QLabel) -> None:
        label.setText(f"{v / STEPS:+.2f}")
        self.moved.emit(index, v / STEPS)
        self.changed.emit()

    def set_names(self, labels: list[str]) -> None:
        """Rename the sliders (another latent space has other variance shares)."""
        grid = self.layout()
        for slider, text in zip(self.sliders, labels, strict=True):
            index = grid.indexOf(slider)
            row = grid.getItemPosition(index)[0]
            name = grid.itemAtPosition(row, 0).widget()
            name.setText(text)
            name.setToolTip(text)

    def values(self) -> tuple[float, ...]:
        return tuple(s.value() / STEPS for s in self.sliders)

    def set_values(self, values) -> None:
        """Move every slider without emitting ``changed`` (one render follows, not 21).

        Sliders already at their value are left alone: the state calls this on every
        change, and a label's new text would repaint the dock during a drag.
        """
        for slider, label, v in zip(self.sliders, self._values, values, strict=True):
            tick = int(round(float(v) * STEPS))
            if slider.value() == tick:
                continue
            slider.blockSignals(True)
            slider.setValue(tick)
            slider.blockSignals(False)
            label.setText(f"{slider.value() / STEPS:+.2f}")
