"""The "FedSim federated" dock: a three-site federated run, its rounds and sites.

Thin: the run is ``fedsim federate`` in a separate process (:class:`CommandJob`), its
arguments and the view of its folder come from :mod:`fedsim_napari.federated_run`. Pause
asks the command to finish the round and checkpoint (SIGINT, exit 130); Resume continues
it with ``--resume``; Stop ends the process at once (the last round's checkpoint stays).
A finished run shows each site's held-out figures (the command scores them at its end).
"""

from __future__ import annotations

from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from fedsim_napari.command import INTERRUPTED, CommandJob
from fedsim_napari.federated_run import PRESETS, RUNTIMES, FederatedSettings, read_run
from fedsim_napari.run_folder import quality_summary

POLL_MS = 1000


class FederatedWidget(QWidget):
    """Sites, data, rounds, runtime and DP budget; Start / Pause / Resume / Stop; per-site
    cards, per-site loss curves, and every N rounds the same latent through each site
    (a slider over the run's views; it follows the newest until moved back)."""

    def __init__(self, napari_viewer=None, parent=None):
        super().__init__(parent)
        from fedsim_napari._qt.loss_plot import LossPlot

        self.setObjectName("FedSimFederated")
        self.viewer = napari_viewer
        self.job: CommandJob | None = None
        self.phase = "idle"  # idle, running, paused, stopped, done, failed
        self.cohort = QLineEdit("cohort")
        self.sites = QLineEdit("A,B,C")
        self.rounds = QSpinBox()
        self.rounds.setRange(0, 100000)
        self.rounds.setSpecialValueText("preset's schedule")
        self.preset = QComboBox()
        self.preset.addItems(PRESETS)
        self.preset.setCurrentText("cpu")
        self.runtime = QComboBox()
        self.runtime.addItems(RUNTIMES)
        self.labels = QSpinBox()
        self.labels.setRange(0, 999)
        self.labels.setSpecialValueText("site default")
        self.dp = QDoubleSpinBox()
        self.dp.setRange(0.0, 1000.0)
        self.dp.setSpecialValueText("off")
        self.view_every = QSpinBox()
        self.view_every.setRange(0, 100000)
        self.view_every.setValue(10)
        self.view_every.setSpecialValueText("off")
        self.view_every.setToolTip("every N rounds render one latent through each site "
                                   "(in-process runtime)")
        self.out = QLineEdit("runs/federated")
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.progress = QProgressBar()
        self.progress.setFormat("round %v/%m")
        self.status = QLabel("not started")
        self.status.setWordWrap(True)
        self.status.setWordWrap(True)
        self.cards_box = QGridLayout()
        self.cards: dict[str, QLabel] = {}
        self.plot = LossPlot()
        self.view_slider = QSlider(Qt.Horizontal)
        self.view_slider.setRange(0, 0)
        self.view_caption = QLabel("no view yet: the same latent through each site "
                                   "appears here every N rounds")
        self.view_caption.setWordWrap(True)
        self.view_image = QLabel()
        self.view_image.setMinimumHeight(320)
        self.view_image.setAlignment(Qt.AlignCenter)
        self._views: list = []  # the RunView's (rounds done, png), as last read
        self._run_view = None
        self._view_shown = None

        form = QFormLayout()
        form.addRow("Cohort", self.cohort)
        form.addRow("Sites", self.sites)
        form.addRow("Rounds", self.rounds)
        form.addRow("Preset", self.preset)
        form.addRow("Runtime", self.runtime)
        form.addRow("Labelled", self.labels)
        form.addRow("DP ε", self.dp)
        form.addRow("View every", self.view_every)
        form.addRow("Run folder", self.out)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.resume_button, self.stop_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(self.cards_box)
        layout.addWidget(QLabel("Per-site losses by round (site, loss)"))
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.view_caption)
        layout.addWidget(self.view_slider)
        layout.addWidget(self.view_image, 3)

        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)
        self.view_slider.valueChanged.connect(self._show_view)
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.refresh)
        self._set_phase("idle")

    def settings(self) -> FederatedSettings:
        keys = tuple(k.strip() for k in self.sites.text().split(",") if k.strip())
        return FederatedSettings(self.cohort.text(), self.out.text(), keys,
                                 self.rounds.value(), self.preset.currentText(),
                                 self.runtime.currentText(), self.labels.value(),
                                 self.dp.value(), view_every=self.view_every.value())

    # -- the run --------------------------------------------------------------------------
    def start(self, *, resume: bool = False) -> None:
        args = self.settings().args(resume=resume)
        self.job = CommandJob("federated run", args, self)
        self.job.finished.connect(self._finished)
        self.job.failed.connect(lambda message: self.status.setText(message))
        self.job.start()
        self._poll.start()
        self._set_phase("running")
        self.status.setText(self.job.command_line)

    def resume(self) -> None:
        self.start(resume=True)

    def pause(self) -> None:
        if self.job is not None and self.job.running:
            self.job.stop()
            self.status.setText("pausing after this round…")

    def stop(self) -> None:
        if self.job is not None and self.job.running:
            self.job.kill()

    def _finished(self, rc: int, stopped: bool) -> None:
        self._poll.stop()
        self.refresh()
        if rc == 0:
            self._set_phase("done")
            # each site's model on its test split, as the command scored it at the end
            summary = quality_summary(self.out.text(), self.job.stdout if self.job else "")
            self.status.setText(f"done: {self.out.text()}" + (f"\n{summary}" if summary
                                                             else ""))
        elif stopped and rc == INTERRUPTED:
            self._set_phase("paused")
            self.status.setText("paused; Resume continues from the last round")
        elif stopped:
            self._set_phase("stopped")
            self.status.setText("stopped; Resume continues from the last saved round")
        else:
            self._set_phase("failed")

    # -- the view -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the run folder: progress, site cards, per-site losses, ε spent."""
        view = read_run(self.out.text(), self.settings().sites)
        if view.total:
            self.progress.setMaximum(view.total)
        self.progress.setValue(view.done)
        for i, (key, card) in enumerate(view.cards.items()):
            if key not in self.cards:
                self.cards[key] = QLabel()
                self.cards[key].setFrameShape(QLabel.StyledPanel)
                self.cards_box.addWidget(self.cards[key], 0, i)
            if self.phase == "running" and card.status == "trained":
                card.status = "training"
            self.cards[key].setText(card.text())
        self.plot.set_series(view.loss_series())
        self._set_views(view)
        if view.dp_epsilon is not None and self.phase == "running":
            self.status.setText(f"{self.job.command_line if self.job else ''}\n"
                                f"privacy spent: ε = {view.dp_epsilon:.2f} of "
                                f"{self.dp.value():g}")

    def _set_views(self, view) -> None:
        """New views extend the slider; it follows the newest unless moved back."""
        following = self.view_slider.value() >= len(self._views) - 1
        self._run_view, self._views = view, view.views
        self.view_slider.setRange(0, max(len(self._views) - 1, 0))
        if following and self._views:
            self.view_slider.setValue(len(self._views) - 1)
        self._show_view(self.view_slider.value())

    def _show_view(self, i: int) -> None:
        if not 0 <= i < len(self._views) or self._views[i] == self._view_shown:
            return
        pixmap = QPixmap(str(self._views[i][1]))
        if pixmap.isNull():  # being written: shown at the next poll
            return
        self._view_shown = self._views[i]
        self.view_image.setPixmap(pixmap.scaled(self.view_image.size(), Qt.KeepAspectRatio,
                                                Qt.SmoothTransformation))
        self.view_caption.setText(self._run_view.view_caption(i))

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        running = phase == "running"
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.resume_button.setEnabled(phase in ("paused", "stopped"))
