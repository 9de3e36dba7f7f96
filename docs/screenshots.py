"""Retake the README's napari pictures under a virtual X server (``make screenshot``).

The Explorer's pictures come from ``python -m fedsim_napari --screenshot`` (the first
sample; latent mode with the shipped default checkpoint, seed 3; the same latent through
three sites). The panels' pictures are taken here: the training panel during a ``smoke``
run on a small 32³ cohort (phase 2 under way, its loss curves and sample grid shown),
the export panel after exporting four 32³ cases with the default checkpoint. Each
picture is taken in a process of its own, under ``xvfb-run`` when there is no display.

    python docs/screenshots.py [--only napari latent_mode three_sites training_panel
                                export_panel] [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPLORER = {
    "napari": [],
    "latent_mode": ["--latent", "default", "--random", "3"],
    "three_sites": ["--latent", "default", "--random", "3", "--three-sites"],
}
PANELS = ("training_panel", "export_panel")
SCREENS = {"explorer": "1920x1080x24", "panel": "1600x1000x24"}


def _display(screen: str) -> list[str]:
    """The command prefix that gives a process a display."""
    if os.environ.get("DISPLAY"):
        return []
    if not shutil.which("xvfb-run"):
        sys.exit("screenshots: no display and no xvfb-run (apt-get install xvfb)")
    return ["xvfb-run", "-a", "-s", f"-screen 0 {screen}"]


def _wait(condition, timeout_s: float, what: str) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            sys.exit(f"screenshots: timed out after {timeout_s:.0f} s waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.05)


def _training(widget, work: Path) -> None:
    from fedsim_app.cohort.generate import generate_cohort

    generate_cohort(work / "cohort", sites="A", cases=5, size=32, seed=0)
    (work / "smoke.toml").write_text("coarse_matrix = false\n")
    widget.source.setCurrentText("cohort folder")
    widget.data.setText(str(work / "cohort"))
    widget.site.setCurrentText("A")
    widget.labels.setValue(2)
    widget.preset.setCurrentText("smoke")
    widget.config.setText(str(work / "smoke.toml"))
    for box, epochs in zip(widget.epochs, (3, 40, 40, 0), strict=True):  # long enough to see
        box.setValue(epochs)
    widget.out.setText(str(work / "run"))
    widget.start_button.click()
    _wait(lambda: widget.phase != "validating", 600, "the data check")
    _wait(lambda: widget.bars[1].value() >= 10 and (work / "run" / "samples.png").is_file()
          or widget.phase != "training", 1800, "phase 2 of the smoke run")
    if widget.phase != "training":
        sys.exit(f"screenshots: the training run ended ({widget.phase}): {widget.job.log}")
    widget.refresh()


def _export(widget, work: Path) -> None:
    widget.checkpoint.setText("default")
    widget.site.setCurrentText("A")
    widget.n.setValue(4)
    widget.size.setValue(32)
    widget.out.setText(str(work / "export"))
    widget.export_button.click()
    _wait(lambda: widget.phase != "exporting", 900, "the export")
    if widget.phase != "done":
        sys.exit(f"screenshots: the export failed: {widget.job.log}")


def panel(name: str, png: Path) -> None:
    """Take the picture of one panel (in this process, which has a display)."""
    import warnings

    warnings.filterwarnings("ignore", message="napari support for the PyQt5 backend")
    import napari

    from fedsim_napari.launch import _close_toasts, fit_to_screen

    viewer = napari.Viewer(title="FedSim")
    title = {"training_panel": "FedSim training", "export_panel": "FedSim export"}[name]
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", title)
    fit_to_screen(viewer)
    with tempfile.TemporaryDirectory(prefix="fedsim-shot-") as work:
        (_training if name == "training_panel" else _export)(widget, Path(work))
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        _close_toasts()
        QApplication.processEvents()
        viewer.screenshot(str(png), canvas_only=False)
        if widget.job is not None and widget.job.running:
            widget.job.kill()
            _wait(lambda: not widget.job.running, 60, "the run to end")
    viewer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[*EXPLORER, *PANELS],
                        default=[*EXPLORER, *PANELS])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images")
    parser.add_argument("--panel", choices=PANELS, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.panel:
        panel(args.panel, args.out / f"{args.panel}.png")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        png = args.out / f"{name}.png"
        if name in EXPLORER:
            cmd = [*_display(SCREENS["explorer"]), sys.executable, "-m", "fedsim_napari",
                   *EXPLORER[name], "--screenshot", str(png)]
        else:
            cmd = [*_display(SCREENS["panel"]), sys.executable, __file__, "--panel", name,
                   "--out", str(args.out)]
        print(f"{name}: {' '.join(cmd)}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            return 1
        print(f"  wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
