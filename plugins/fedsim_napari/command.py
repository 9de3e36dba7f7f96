"""A ``fedsim`` command run as a separate process for a panel (training, export).

The GUI never computes these on its own threads: the panel's run is the same as one typed
in a shell, resumable from its folder, and the window stays responsive. ``stop()`` sends
SIGINT (the commands finish the current step or case, write what they hold and exit
130); ``kill()`` ends the process at once.
"""

from __future__ import annotations

import os
import signal
import sys

from qtpy.QtCore import QObject, QProcess, QProcessEnvironment, Signal

#: exit status of a command stopped by SIGINT after saving its state
INTERRUPTED = 130


class CommandJob(QObject):
    """Run ``python -m fedsim_app ARGS`` and relay its output.

    Signals
    -------
    output(text) : a chunk of stdout or stderr, as it arrives
    finished(rc, stopped) : the exit status, and whether :meth:`stop` or :meth:`kill` asked
    failed(message) : the command failed (not stopped by us): its last error line
    """

    output = Signal(str)
    finished = Signal(int, bool)
    failed = Signal(str)

    def __init__(self, title: str, args: list[str], parent=None):
        super().__init__(parent)
        self.title = title
        self.args = [str(a) for a in args]
        self.stopped = False
        self.log = ""  # stdout and stderr as they arrived (progress bars included)
        self.stdout = ""  # stdout alone: the command's result lines
        self.process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        # the child imports the same fedsim_app as this GUI
        env.insert("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read_out)
        self.process.readyReadStandardError.connect(self._read_err)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)

    @property
    def command_line(self) -> str:
        return "fedsim " + " ".join(self.args)

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.NotRunning

    def start(self) -> CommandJob:
        self.process.start(sys.executable, ["-m", "fedsim_app", *self.args])
        return self

    def stop(self) -> None:
        """Ask the command to save and exit (SIGINT, as Ctrl-C in a shell)."""
        if self.running:
            self.stopped = True
            os.kill(int(self.process.processId()), signal.SIGINT)

    def kill(self) -> None:
        if self.running:
            self.stopped = True
            self.process.kill()

    def _read_out(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode(errors="replace")
        self.stdout = (self.stdout + text)[-20000:]
        self._relay(text)

    def _read_err(self) -> None:
        self._relay(bytes(self.process.readAllStandardError()).decode(errors="replace"))

    def _relay(self, text: str) -> None:
        self.log = (self.log + text)[-20000:]
        self.output.emit(text)

    def _finished(self, rc: int, _status=None) -> None:
        self._read_out()
        self._read_err()
        if rc != 0 and not (self.stopped and rc in (INTERRUPTED, -9, 9)) and \
                not (self.stopped and self.process.exitStatus() == QProcess.CrashExit):
            self._report(rc)
        self.finished.emit(int(rc), self.stopped)

    def _error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self.failed.emit(f"{self.title}: could not start {sys.executable}")

    def _report(self, rc: int) -> None:
        from fedsim_napari.workers import notify_error

        lines = [ln.strip() for ln in self.log.replace("\r", "\n").splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "%|" not in ln), f"exit status {rc}")
        message = f"{self.title} failed: {last}"
        self.failed.emit(message)
        notify_error(message)
