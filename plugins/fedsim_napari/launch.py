"""Start napari with the FedSim Explorer docked (site A, mean shape).

The FedSim status dock stays available from the Plugins menu.
"""

from __future__ import annotations

import argparse


def open_viewer(show: bool = True, preset: str | None = None):
    """A napari viewer with the Explorer docked; returns ``(viewer, [explorer])``."""
    import napari

    from fedsim_app.pipeline import DEFAULT_PRESET
    from fedsim_napari.explorer_widget import ExplorerWidget

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedsim_napari")
    parser.add_argument("--screenshot", help="save a window screenshot to this PNG and quit")
    parser.add_argument("--preset", choices=("interactive", "paper"), default=None,
                        help="resolution preset of the Explorer (default: interactive, 64³)")
    parser.add_argument("--random", type=int, default=None, metavar="SEED",
                        help="start on the random sample of this seed instead of the mean")
    args = parser.parse_args(argv)
    import warnings

    import napari

    # FedSim installs PyQt5 on purpose (see pyproject); the toast would cover the views
    warnings.filterwarnings("ignore", message="napari support for the PyQt5 backend")

    viewer, (explorer,) = open_viewer(show=True, preset=args.preset)
    if args.random is not None:
        from fedsim_app.pipeline import SampleState

        explorer.set_state(SampleState.random(args.random, "A"))
    if args.screenshot:
        from qtpy.QtCore import QTimer

        def _shoot():
            if not explorer.settled:
                QTimer.singleShot(300, _shoot)  # wait for the first render, fully shown
                return
            from qtpy.QtWidgets import QApplication

            viewer.window._qt_window.resize(1600, 1000)
            QApplication.processEvents()
            viewer.reset_view()
            _close_toasts()
            QApplication.processEvents()
            viewer.screenshot(args.screenshot, canvas_only=False)
            viewer.close()

        QTimer.singleShot(2500, _shoot)
    napari.run()


def _close_toasts() -> None:
    """Close napari's notification toasts (they would cover the views in a screenshot)."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtWidgets import QApplication

    for widget in QApplication.allWidgets():
        if isinstance(widget, NapariQtNotification):
            widget.close()
