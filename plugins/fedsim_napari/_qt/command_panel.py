"""What every panel that runs a ``fedsim`` command shares: form, buttons, phases, the job.

A panel (training, export; the federated panel may adopt it) is a form of settings, a row
of buttons each enabled in some phases of the run, a status line and one
:class:`fedsim_napari.command.CommandJob` at a time. :class:`CommandPanel` holds that
state and wiring; the panel says which phases enable which button, what the command's
output means (``_output``) and what its end means (``_finished``).
"""

from __future__ import annotations

from collections.abc import Iterable

from qtpy.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLayout, QPushButton, QWidget

from fedsim_napari.command import INTERRUPTED, CommandJob


def outcome(rc: int, stopped: bool) -> str:
    """How a command ended: ``"done"``, ``"interrupted"`` (stopped by SIGINT after saving
    its state), ``"killed"`` (stopped at once) or ``"failed"`` (on its own, not zero)."""
    if rc == 0:
        return "done"
    if stopped:
        return "interrupted" if rc == INTERRUPTED else "killed"
    return "failed"


def form(rows: Iterable[tuple[str, QWidget | QLayout | Iterable[QWidget]]]) -> QFormLayout:
    """A form of ``(label, field)`` rows; a field given as several widgets shares its row
    (the first one stretches)."""
    layout = QFormLayout()
    for label, field in rows:
        if not isinstance(field, (QWidget, QLayout)):
            row = QHBoxLayout()
            for i, widget in enumerate(field):
                row.addWidget(widget, 1 if i == 1 else 0)
            field = row
        layout.addRow(label, field)
    return layout


def wrapped_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label


class CommandPanel(QWidget):
    """A dock running one ``fedsim`` command at a time (see the module docstring).

    Attributes
    ----------
    job : the command running or last run (None before the first)
    phase : the run's phase, a name the panel chooses (``"idle"`` first)
    status : the status line
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.job: CommandJob | None = None
        self.phase = "idle"
        self.status = wrapped_label("not started")
        self._enabled_in: list[tuple[QPushButton, tuple[str, ...]]] = []

    def button_row(self, buttons: dict[str, tuple[str, ...]]) -> tuple[QHBoxLayout, list]:
        """Buttons ``{title: phases in which it is enabled}`` in one row; returns the row and
        the buttons in order."""
        row, made = QHBoxLayout(), []
        for title, phases in buttons.items():
            button = QPushButton(title)
            self._enabled_in.append((button, tuple(phases)))
            row.addWidget(button)
            made.append(button)
        return row, made

    def launch(self, job: CommandJob, phase: str) -> None:
        """Start ``job`` as the panel's command, in ``phase``; its output goes to
        ``_output``, its end to ``_finished``, its failure to the status line (and, from
        the job, to a notification)."""
        self.job = job
        job.output.connect(self._output)
        job.finished.connect(lambda rc, stopped: self._finished(job, rc, stopped))
        job.failed.connect(self.status.setText)
        self.set_phase(phase)
        job.start()

    def set_phase(self, phase: str) -> None:
        """Enter ``phase``: each button is enabled in its phases only."""
        self.phase = phase
        for button, phases in self._enabled_in:
            button.setEnabled(phase in phases)

    def _output(self, text: str) -> None:
        """A chunk of the command's output (progress bars): nothing by default."""

    def _finished(self, job: CommandJob, rc: int, stopped: bool) -> None:
        """The command ended (see :func:`outcome`); every panel says what that means."""
        raise NotImplementedError(f"{type(self).__name__} must say what the end of "
                                  f"'{job.command_line}' means (_finished)")
