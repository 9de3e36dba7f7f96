"""The "FedSim training" dock: run ``fedsim train`` for a site, watch it, use its checkpoints.

The run is the ``fedsim train`` command in a separate process (:class:`CommandJob`), so
it is the same run as one typed in a shell and can be resumed from its folder. The panel
validates the data first (``fedsim validate``; its problems are listed), follows the
progress bars of the command's output, and polls the run folder (:mod:`run_folder`) for
the loss curves, the sample grid and the checkpoints; at the end the command scores the
model on the dataset's test split and the panel shows those figures. Pause asks the command to stop
after writing a checkpoint (SIGINT, exit 130); Resume starts it again with ``--resume``;
Cancel ends the process at once (its last checkpoint stays on disk).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from fedsim_napari import run_folder
from fedsim_napari._qt.command_panel import CommandPanel, form, outcome, wrapped_label
from fedsim_napari.command import CommandJob
from fedsim_napari.state import AppState, shared_state

SOURCES = ("cohort folder", "dataset folder")
TRAIN_PRESETS = ("smoke", "cpu", "paper")
POLL_MS = 1000
PHASES = (1, 2, 3, 4)  # the training phases (4: when the config sets phase4_epochs)
RUNNING = ("validating", "training")
STOPPED = ("idle", "paused", "cancelled", "done", "failed")


class TrainingWidget(CommandPanel):
    """Dataset, site, label budget and preset; Start / Pause / Resume / Cancel; live view."""

    def __init__(self, napari_viewer=None, parent=None, *, state: AppState | None = None):
        super().__init__(parent)
        from fedsim_app.sites import load_sites

        self.setObjectName("FedSimTraining")
        self.viewer = napari_viewer
        self.app_state = state if state is not None else shared_state(napari_viewer)
        self._train: list[str] = []  # the command started once the data passed validation
        # phases: idle, validating, training, paused, cancelled, done, failed
        self.source = QComboBox()
        self.source.addItems(SOURCES)
        self.data = QLineEdit("cohort")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.site = QComboBox()
        self.site.addItems(list(load_sites()))
        self.labels = QSpinBox()
        self.labels.setRange(0, 999)
        self.labels.setSpecialValueText("site default")
        self.preset = QComboBox()
        self.preset.addItems(TRAIN_PRESETS)
        self.preset.setCurrentText("cpu")
        self.config = QLineEdit()
        self.config.setPlaceholderText("optional TOML overriding the preset")
        self.epochs = []  # passes over the phase's volumes, per phase (0: the preset's)
        for phase in PHASES:
            box = QSpinBox()
            box.setRange(0, 100_000)
            box.setSpecialValueText("preset")
            box.setButtonSymbols(QSpinBox.NoButtons)  # four in a row: room for "preset"
            box.setToolTip(f"phase {phase}: epochs (passes over its volumes); 'preset' "
                           "keeps the preset's or the config's")
            self.epochs.append(box)
        self.out = QLineEdit("runs/site-A")
        self.site.currentTextChanged.connect(lambda s: self.out.setText(f"runs/site-{s}"))
        buttons, (self.start_button, self.pause_button, self.resume_button,
                  self.cancel_button) = self.button_row({
                      "Start": STOPPED, "Pause": ("training",),
                      "Resume": ("paused", "cancelled"), "Cancel": RUNNING})
        self.bars = [QProgressBar() for _ in PHASES]
        self._reset_bars()
        self.problems = wrapped_label()
        self.quality = wrapped_label()  # the finished run's held-out figures (quality.json)
        from fedsim_napari._qt.loss_plot import LossPlot

        self.plot = LossPlot()
        self.samples = QLabel("the sample grid appears here")
        self.samples.setMinimumHeight(120)
        self.samples.setAlignment(Qt.AlignCenter)
        self.checkpoints = QListWidget()
        self.checkpoints.setMaximumHeight(70)
        self.load_button = QPushButton("Load checkpoint into the Explorer")
        self._samples_mtime = None

        layout = QVBoxLayout(self)
        layout.addLayout(form([
            ("Data", (self.source, self.data, browse)), ("Site", self.site),
            ("Labelled", self.labels), ("Preset", self.preset), ("Config", self.config),
            ("Epochs 1/2/3/4", self.epochs), ("Run folder", self.out)]))
        layout.addLayout(buttons)
        for bar in self.bars:
            layout.addWidget(bar)
        layout.addWidget(self.status)
        layout.addWidget(self.problems)
        layout.addWidget(self.quality)
        layout.addWidget(self.plot, 2)
        layout.addWidget(self.samples, 2)
        layout.addWidget(QLabel("Checkpoints"))
        layout.addWidget(self.checkpoints)
        layout.addWidget(self.load_button)

        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button.clicked.connect(self.cancel)
        self.load_button.clicked.connect(self.load_checkpoint)
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.refresh)
        self.set_phase("idle")

    # -- commands -------------------------------------------------------------------------
    def _train_args(self, resume: bool) -> list[str]:
        key = "--cohort" if self.source.currentText() == SOURCES[0] else "--data"
        args = ["train", "--site", self.site.currentText(), "--out", self.out.text(),
                key, self.data.text()]
        if self.labels.value():
            args += ["--labels", str(self.labels.value())]
        if resume:  # the run's own settings (config.toml in its folder) are used
            return [*args, "--resume"]
        preset = self.preset.currentText()
        if not self.config.text().strip() and not any(b.value() for b in self.epochs):
            return [*args, "--preset", preset]
        # `--config` sets the base preset itself: one file says preset, config and epochs
        out = Path(self.out.text())
        config = run_folder.launch_config(
            out.parent / f"{out.name}.train.toml", preset, self.config.text().strip(),
            {i + 1: b.value() for i, b in enumerate(self.epochs)})
        return [*args, "--preset", preset, "--config", str(config)]

    def start(self) -> None:
        """Validate the data, then train from scratch."""
        from napari.utils.notifications import show_error

        from fedsim_app.sites import get_site

        try:
            self._train = self._train_args(False)
        except ValueError as exc:
            show_error(f"FedSim training: {exc}")
            self.set_phase("failed")
            self.status.setText(str(exc))
            return
        path = self.data.text()
        if self.source.currentText() == SOURCES[0]:  # the site's dataset in the cohort
            path = str(Path(path) / get_site(self.site.currentText()).dataset.folder)
        self.problems.setText("")
        self._reset_bars()
        self.launch(CommandJob("Checking the training data (fedsim validate)",
                               ["validate", path]), "validating")

    def pause(self) -> None:
        if self.job is not None and self.phase == "training":
            self.status.setText("pausing: the run finishes its step and writes a checkpoint…")
            self.job.stop()

    def resume(self) -> None:
        self.launch(CommandJob("Training (fedsim train --resume)", self._train_args(True)),
                    "training")

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.job.kill()

    def launch(self, job: CommandJob, phase: str) -> None:
        super().launch(job, phase)
        self._poll.start()

    def _finished(self, job: CommandJob, rc: int, stopped: bool) -> None:
        if job.args[0] == "validate":
            if rc == 0:
                self.launch(CommandJob("Training (fedsim train)", self._train), "training")
                return
            self.problems.setText("<b>The data has problems</b> (fedsim validate):<br>"
                                  + "<br>".join(job.log.strip().splitlines()[:12]))
            self.set_phase("failed")
            return
        self.refresh()
        self.set_phase({"done": "done", "interrupted": "paused", "killed": "cancelled",
                        "failed": "failed"}[outcome(rc, stopped)])

    def set_phase(self, phase: str) -> None:
        super().set_phase(phase)
        if phase not in RUNNING:
            self._poll.stop()
        out = self.out.text()
        texts = {"idle": "not started", "validating": "checking the data…",
                 "training": f"training: {self.job.command_line if self.job else ''}",
                 "paused": f"paused; checkpoint in {out} (Resume continues it)",
                 "cancelled": f"cancelled; the last checkpoint in {out} stays (Resume "
                              "continues from it)",
                 "done": f"finished: {out}"}
        if phase in texts:
            self.status.setText(texts[phase])
        if phase == "done":
            log = self.job.stdout if self.job is not None else ""
            self.quality.setText(run_folder.quality_summary(out, log) or "")
        else:
            self.quality.setText("")
        if phase == "done":  # a phase of no steps (phase 4 unless the config sets it), or
            # one a resumed run had finished before this panel watched it
            for p, bar in zip(PHASES, self.bars, strict=True):
                if p not in self._reported:
                    bar.setFormat(f"phase {p}: no steps seen")

    def _reset_bars(self) -> None:
        """Every bar empty, saying so until the run reports its phase."""
        self._reported: set[int] = set()
        for p, bar in zip(PHASES, self.bars, strict=True):
            bar.setMaximum(1)
            bar.setValue(0)
            bar.setFormat(f"phase {p}: –")

    # -- what the run shows -------------------------------------------------------------
    def _output(self, text: str) -> None:
        if "quality: scoring" in text and self.phase == "training":
            self.status.setText("trained; scoring the model on the dataset's held-out test "
                                "split…")
        for phase, (done, total) in run_folder.parse_progress(text).items():
            phase = min(phase, len(PHASES))
            bar = self.bars[phase - 1]
            if phase not in self._reported:
                self._reported.add(phase)
                bar.setFormat(f"phase {phase}: %v/%m")
            bar.setMaximum(max(total, 1))
            bar.setValue(done)

    def refresh(self) -> None:
        """Read the run folder: loss curves, sample grid, checkpoints."""
        folder = Path(self.out.text())
        self.plot.set_series(run_folder.loss_series(run_folder.read_metrics(folder)))
        png = folder / "samples.png"
        if png.is_file() and png.stat().st_mtime != self._samples_mtime:
            self._samples_mtime = png.stat().st_mtime
            pixmap = QPixmap(str(png))
            if not pixmap.isNull():
                self.samples.setPixmap(pixmap.scaled(
                    self.samples.size(), Qt.KeepAspectRatio, Qt.SmoothTransformation))
        names = [str(p) for p in run_folder.checkpoints(folder)]
        if names != [self.checkpoints.item(i).text() for i in range(self.checkpoints.count())]:
            self.checkpoints.clear()
            self.checkpoints.addItems(names)
            self.checkpoints.setCurrentRow(0)

    def load_checkpoint(self) -> None:
        """Render the Explorer with the selected checkpoint's site enhancer."""
        from napari.utils.notifications import show_error

        item = self.checkpoints.currentItem()
        if item is None:
            show_error("FedSim training: no checkpoint yet; start a run and wait for one.")
            return
        try:
            self.app_state.set_checkpoint(item.text())
        except ValueError as exc:
            show_error(f"FedSim training: {exc}")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training data folder")
        if folder:
            self.data.setText(folder)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._poll.stop()
        super().closeEvent(event)
