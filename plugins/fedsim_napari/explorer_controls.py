"""The Explorer's slider panel: 14 shape modes and 7 rigid parameters in [-1, 1]."""

from __future__ import annotations

import math

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QGridLayout, QLabel, QSlider, QWidget

STEPS = 100  # slider ticks per unit: 0.01 resolution on [-1, 1]


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
    """21 labelled sliders; ``changed`` fires on user moves, not on :meth:`set_values`."""

    changed = Signal()

    def __init__(self, labels: list[str], parent=None):
        super().__init__(parent)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setVerticalSpacing(1)
        self.sliders: list[QSlider] = []
        self._values: list[QLabel] = []
        for row, text in enumerate(labels):
            if row == 14:
                layout.addWidget(QLabel("<b>Pose and size</b>"), row + 1, 0, 1, 3)
            grid_row = row + (2 if row >= 14 else 1)
            slider = QSlider(Qt.Horizontal)
            slider.setRange(-STEPS, STEPS)
            slider.setObjectName(f"param_{row}")
            slider.setMinimumWidth(80)
            value = QLabel("+0.00")
            # fixed width: a new value must not re-layout the dock (and repaint its 3D view)
            value.setFixedWidth(value.fontMetrics().horizontalAdvance("+0.00") + 14)
            slider.valueChanged.connect(lambda v, lab=value: self._moved(v, lab))
            name = QLabel(text)
            name.setToolTip(text)
            layout.addWidget(name, grid_row, 0)
            layout.addWidget(slider, grid_row, 1)
            layout.addWidget(value, grid_row, 2)
            self.sliders.append(slider)
            self._values.append(value)
        layout.addWidget(QLabel("<b>Shape modes</b>"), 0, 0, 1, 3)
        layout.setColumnStretch(1, 1)

    def _moved(self, v: int, label: QLabel) -> None:
        label.setText(f"{v / STEPS:+.2f}")
        self.changed.emit()

    def values(self) -> tuple[float, ...]:
        return tuple(s.value() / STEPS for s in self.sliders)

    def set_values(self, values) -> None:
        """Move every slider without emitting ``changed`` (one render follows, not 21)."""
        for slider, label, v in zip(self.sliders, self._values, values, strict=True):
            slider.blockSignals(True)
            slider.setValue(int(round(float(v) * STEPS)))
            slider.blockSignals(False)
            label.setText(f"{slider.value() / STEPS:+.2f}")
