"""The Explorer's "fit to a label file" row: pick a Labels layer, fit the SSM in a worker.

The fit itself is the engine's (``FedSimModel.fit``); this widget lists the candidate
layers, runs the fit as a :class:`~fedsim_napari.workers.LongJob` and hands the fitted
parameters to ``on_params`` (the Explorer writes them into the shared state).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from fedsim_napari.workers import LongJob

#: What the fit selector says while no label file is open: the Explorer's own labels
#: layer is listed in napari's layer list but is never offered as a fit target.
FIT_PLACEHOLDER = "open a label file to fit"


class FitBox(QWidget):
    """Layer selector, fit button and the last fit's result line.

    Parameters
    ----------
    viewer : the napari viewer whose Labels layers are offered
    model : the Explorer's ``FedSimModel`` (its ``fit`` and ``ssm``)
    own_layers : returns the Explorer's own layers, never offered as targets
    on_params : called with the fitted 21 parameters
    """

    def __init__(self, viewer, model, own_layers: Callable[[], set],
                 on_params: Callable[[tuple], None]):
        super().__init__()
        self.viewer, self.model = viewer, model
        self._own_layers, self._on_params = own_layers, on_params
        self.last_fit = None
        self._job = None
        self.layer = QComboBox()
        self.layer.setPlaceholderText(FIT_PLACEHOLDER)
        self.layer.setToolTip("a Labels layer to fit the shape model to: open a label "
                              "file (e.g. MM-WHS) with File > Open. The Explorer's own "
                              "labels layer is what it shows, not a fit target.")
        self.button = QPushButton("Fit to labels layer")
        self.status = QLabel()
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.layer, 1)
        row.addWidget(self.button)
        self.button.setMinimumWidth(self.button.sizeHint().width())  # never cut
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.button.clicked.connect(lambda: self.fit())
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        """List the 3-D Labels layers that are not the Explorer's own."""
        from napari.layers import Labels

        ours = self._own_layers()
        names = [layer.name for layer in self.viewer.layers
                 if isinstance(layer, Labels) and layer not in ours and layer.ndim == 3]
        current = self.layer.currentText()
        self.layer.clear()
        self.layer.addItems(names)
        # with a placeholder text Qt leaves the index at -1: choose explicitly
        self.layer.setCurrentIndex(names.index(current) if current in names
                                   else (0 if names else -1))
        self.button.setEnabled(bool(names))

    def fit(self, layer=None) -> LongJob | None:
        """Fit the SSM to ``layer`` (default: the selected one) in a worker."""
        from napari.utils.notifications import show_error

        from fedsim_napari.fit import labels_and_grid

        name = layer.name if layer is not None else self.layer.currentText()
        try:
            labels, grid = labels_and_grid(self.viewer, name)
        except ValueError as exc:
            show_error(f"FedSim Explorer cannot fit: {exc}")
            return None
        self.button.setEnabled(False)
        self.status.setText(f"fitting the SSM to {name}…")
        job = LongJob(f"FedSim Explorer: fitting {name} (check that the layer holds a whole "
                      "heart in internal label codes 0..7)", self.model.fit, labels, grid)
        job.returned.connect(lambda out: self._done(name, out))
        job.failed.connect(lambda message: self.status.setText(message))
        job.finished.connect(lambda: self.button.setEnabled(True))
        self._job = job
        return job.start()

    def _done(self, name: str, out) -> None:
        from fedsim_app.pipeline import params_from_fit

        self._job = None
        self.last_fit = out
        mean = float(np.mean(list(out.dice.values()))) if out.dice else 0.0
        shift = float(np.linalg.norm(out.offset_mm))
        self.status.setText(
            f"Fit to <b>{name}</b>: mean Dice {mean:.3f} over {len(out.dice)} structures "
            f"(heart IoU {out.binary_iou:.3f}, {out.seconds:.1f} s); shown in the SSM's "
            f"frame ({shift:.0f} mm from where it sits in {name})")
        self._on_params(params_from_fit(self.model.ssm, out))
