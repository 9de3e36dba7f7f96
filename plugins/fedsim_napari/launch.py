"""Start napari with the FedSim Explorer docked (site A, mean shape).

``python -m fedsim_napari`` (what ``make run`` starts) opens the window fitted to the
screen; ``--screenshot PNG`` saves it once the first sample is shown and quits, which is
how the GUI runs on a headless machine under ``xvfb-run``. The FedSim status dock stays
available from the Plugins menu.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROG = "python -m fedsim_napari"
HEADLESS_HINT = (
    'on a machine without a screen, run it under a virtual X server, e.g.\n'
    '  xvfb-run -a -s "-screen 0 1920x1080x24" python -m fedsim_napari --screenshot shot.png\n'
    "(it saves the window as a PNG and quits); everything else FedSim does runs without a "
    "display through the `fedsim` command (see `fedsim --help`)"
)


def open_viewer(show: bool = True, preset: str | None = None):
    """A napari viewer with the Explorer docked; returns ``(viewer, [explorer])``."""
    import napari

    from fedsim_app.pipeline import DEFAULT_PRESET
    from fedsim_napari._qt.explorer import ExplorerWidget

    viewer = napari.Viewer(title="FedSim", show=show)
    widget = ExplorerWidget(viewer, preset=preset or DEFAULT_PRESET, site="A")
    dock = viewer.window.add_dock_widget(widget, name="FedSim Explorer", area="right")
    give_views_room(viewer, dock)
    return viewer, [widget]


def give_views_room(viewer, explorer_dock) -> None:
    """Narrow docks on both sides, so the 2×2 slice grid gets most of the window."""
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window
    qt_viewer = viewer.window._qt_viewer
    left = [qt_viewer.dockLayerControls, qt_viewer.dockLayerList]
    window.resizeDocks([explorer_dock, *left], [430, 240, 240], Qt.Horizontal)


def fit_to_screen(viewer) -> None:
    """Give the window its screen's whole free area, and ask a window manager to maximise.

    Without a window manager (Xvfb, a bare X server) maximising does nothing and napari
    opens at about 1089×643, where the views are a few hundred pixels wide and most sliders
    are hidden; setting the geometry works with or without one.
    """
    from qtpy.QtWidgets import QApplication

    window = viewer.window._qt_window
    screen = window.screen() or QApplication.primaryScreen()
    if screen is None:
        return
    window.setGeometry(screen.availableGeometry())
    window.showMaximized()


def display_problem(environ=None) -> str | None:
    """Why Qt could not open a window here (Linux without a reachable X or Wayland display),
    or None. Checked before Qt starts, since Qt aborts the process without a display."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    if env.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs"):
        return None
    if env.get("WAYLAND_DISPLAY"):
        return None
    display = env.get("DISPLAY", "")
    if not display:
        return "no display to open the napari window on (DISPLAY is not set)"
    host, _, number = display.rpartition(":")
    number = number.split(".")[0]
    local = host in ("", "unix") and number.isdigit()
    if local and not Path(f"/tmp/.X11-unix/X{number}").exists():
        return f"no X server is running on display {display}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Open napari with the FedSim Explorer docked (site A, mean shape).",
        epilog="Headless: " + HEADLESS_HINT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--screenshot", metavar="PNG",
                        help="save the window to this PNG once the first sample is shown, "
                        "then quit")
    parser.add_argument("--preset", choices=("interactive", "paper"), default=None,
                        help="resolution preset of the Explorer (default: interactive, 64³)")
    parser.add_argument("--random", type=int, default=None, metavar="SEED",
                        help="start on the random sample of this seed instead of the mean")
    parser.add_argument("--latent", metavar="CHECKPOINT",
                        help="start in latent mode with this trained checkpoint or bundle "
                        "('default': the shipped one)")
    parser.add_argument("--three-sites", action="store_true",
                        help="latent mode: show the latent through every site side by side")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = display_problem()
    if problem:
        print(f"{PROG}: {problem}; the FedSim Explorer needs a display.\n{HEADLESS_HINT}",
              file=sys.stderr)
        return 2
    import warnings

    import napari

    # FedSim installs PyQt5 on purpose (see pyproject); the toast would cover the views
    warnings.filterwarnings("ignore", message="napari support for the PyQt5 backend")

    viewer, (explorer,) = open_viewer(show=True, preset=args.preset)
    fit_to_screen(viewer)
    if args.random is not None:
        from fedsim_app.pipeline import SampleState

        explorer.set_state(SampleState.random(args.random, "A"))
    if args.latent:
        state = explorer.app_state
        if args.latent != "default":
            try:
                state.set_checkpoint(args.latent)
            except ValueError as exc:
                print(f"{PROG}: {exc}", file=sys.stderr)
                return 2
        state.set_three_sites(args.three_sites)
        state.set_mode("latent")
        if args.random is not None:
            explorer.latent_box.loaded.connect(lambda _m: _random_latent(explorer, args.random))
    if args.screenshot:
        from qtpy.QtCore import QTimer

        def _shoot():
            if not explorer.settled or (args.latent and not _latent_shown(explorer)):
                QTimer.singleShot(300, _shoot)  # wait for the first render, fully shown
                return
            from qtpy.QtWidgets import QApplication

            QApplication.processEvents()
            viewer.reset_view()
            _close_toasts()
            QApplication.processEvents()
            viewer.screenshot(args.screenshot, canvas_only=False)
            viewer.close()

        QTimer.singleShot(2500, _shoot)
    napari.run()
    return 0


def _random_latent(explorer, seed: int) -> None:
    space = explorer.latent_box.space()
    if space is not None:
        explorer.app_state.set_seed(seed)
        explorer.app_state.set_latent(space.random(seed))


def _latent_shown(explorer) -> bool:
    """Latent mode's volume is wholly enhanced and shown (or latent mode cannot run)."""
    if explorer.latent_box.error or explorer.latent_box.notice.text().startswith("No trained"):
        return True
    r = explorer.result
    return (r is not None and r.latent is not None and explorer._complete()
            and not explorer._fill.isActive())


def _close_toasts() -> None:
    """Close napari's notification toasts (they would cover the views in a screenshot)."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtWidgets import QApplication

    for widget in QApplication.allWidgets():
        if isinstance(widget, NapariQtNotification):
            widget.close()
