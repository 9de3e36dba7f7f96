"""The "FedSim export" dock: run ``fedsim export`` for a site and show what it wrote.

Like the training panel, the export is the command in a separate process
(:class:`CommandJob`): the same dataset as from a shell, resumable by running it again.
Progress shows cases/min and the time left; Cancel asks the command to stop after the
last finished case (SIGINT, exit 130), so every case on disk is complete; the summary
names the dataset folder and shows its novelty table.
"""

from __future__ import annotations

import time

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLineEdit,
    QProgressBar,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from fedsim_napari import export_run
from fedsim_napari._qt.command_panel import CommandPanel, form, outcome, wrapped_label
from fedsim_napari.command import CommandJob
from fedsim_napari.state import AppState, shared_state

LABEL_CODES = ("internal", "mmwhs", "mmwhs-consecutive")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ExportWidget(CommandPanel):
    """Checkpoint, site, N, folder, label codes, seed, meshes; Export / Cancel; summary."""

    def __init__(self, napari_viewer=None, parent=None, *, state: AppState | None = None):
        super().__init__(parent)
        from fedsim_app.sites import load_sites

        self.setObjectName("FedSimExport")
        self.app_state = state if state is not None else shared_state(napari_viewer)
        # phases: idle, exporting, cancelled, done, failed
        self.checkpoint = QLineEdit(self.app_state.checkpoint or "default")
        self.checkpoint.setToolTip("a training run folder or checkpoint file; 'default' is "
                                   "the shipped one; 'atlas' the SSM with Fix-Mat")
        self.app_state.events.checkpoint.connect(
            lambda p: self.checkpoint.setText(p or "default"))
        self.site = QComboBox()
        self.site.addItems(list(load_sites()))
        self.site.setCurrentText(self.app_state.sample.site)
        self.n = QSpinBox()
        self.n.setRange(1, 100_000)
        self.n.setValue(20)
        self.size = QSpinBox()
        self.size.setRange(16, 512)
        self.size.setSingleStep(16)
        self.size.setValue(128)
        self.out = QLineEdit("export")
        self.codes = QComboBox()
        self.codes.addItems(LABEL_CODES)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.meshes = QCheckBox("write PLY meshes per case")
        buttons, (self.export_button, self.cancel_button) = self.button_row({
            "Export": ("idle", "cancelled", "done", "failed"), "Cancel": ("exporting",)})
        self.progress = QProgressBar()
        self.progress.setFormat("%v/%m cases")
        self.summary = wrapped_label()
        self.novelty = QTableWidget()
        self._started = self._first_done = None

        layout = QVBoxLayout(self)
        layout.addLayout(form([
            ("Checkpoint", self.checkpoint), ("Site", self.site), ("Cases", self.n),
            ("Size (voxels)", self.size), ("Folder", self.out), ("Label codes", self.codes),
            ("Seed", self.seed), ("", self.meshes)]))
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.summary)
        layout.addWidget(self.novelty, 1)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.set_phase("idle")

    def args(self) -> list[str]:
        args = ["export", "--checkpoint", self.checkpoint.text().strip() or "default",
                "--site", self.site.currentText(), "--n", str(self.n.value()),
                "--out", self.out.text(), "--seed", str(self.seed.value()),
                "--size", str(self.size.value()), "--label-codes", self.codes.currentText()]
        return [*args, "--meshes"] if self.meshes.isChecked() else args

    def start(self) -> None:
        self._started, self._first_done = time.monotonic(), None
        self.summary.setText("")
        self.novelty.clear()
        self.launch(CommandJob("Export (fedsim export)", self.args()), "exporting")

    def cancel(self) -> None:
        """Stop after the case being written (complete cases stay)."""
        if self.job is not None and self.job.running:
            self.status.setText("cancelling after the case being written…")
            self.job.stop()

    def _output(self, text: str) -> None:
        found = export_run.parse_cases(text)
        if found is None:
            return
        done, total = found
        if self._first_done is None:  # cases kept from an earlier run are not timed
            self._first_done, self._started = done, time.monotonic()
        rate = export_run.Rate.measure(done, total, self._first_done,
                                       time.monotonic() - self._started)
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.status.setText(rate.text())

    def _finished(self, job: CommandJob, rc: int, stopped: bool) -> None:
        ended = outcome(rc, stopped)
        # a killed export (never from this panel) may leave a case half-written
        self.set_phase({"done": "done", "interrupted": "cancelled"}.get(ended, "failed"))
        if self.phase == "failed":
            return
        folder = export_run.dataset_folder(self.out.text())
        lines = [ln for ln in job.stdout.splitlines() if ln.strip()]
        self.summary.setText(f"<b>{folder or self.out.text()}</b><br>" + "<br>".join(lines))
        if folder is not None:
            self._show_novelty(folder)

    def _show_novelty(self, folder) -> None:
        header, rows = export_run.read_novelty(folder)
        self.novelty.setColumnCount(len(header))
        self.novelty.setRowCount(len(rows))
        self.novelty.setHorizontalHeaderLabels(header)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                text = f"{float(value):.3f}" if _is_number(value) else value
                self.novelty.setItem(i, j, QTableWidgetItem(text))
        self.novelty.resizeColumnsToContents()

    def set_phase(self, phase: str) -> None:
        super().set_phase(phase)
        if phase == "cancelled":
            self.status.setText(f"cancelled: {self.progress.value()} complete cases kept; "
                                "Export again resumes")
        elif phase == "done":
            self.status.setText("finished")
