"""Start napari with FedSim docked on the embedded default."""

from __future__ import annotations

import argparse


def open_viewer(show: bool = True):
    """A napari viewer with the FedSim docks added; returns ``(viewer, widgets)``."""
    import napari

    viewer = napari.Viewer(title="FedSim", show=show)
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim")
    return viewer, [widget]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fedsim_napari")
    parser.add_argument("--screenshot", help="save a window screenshot to this PNG and quit")
    args = parser.parse_args(argv)
    import napari

    viewer, _ = open_viewer(show=True)
    if args.screenshot:
        from qtpy.QtCore import QTimer

        def _shoot():
            viewer.screenshot(args.screenshot, canvas_only=False)
            viewer.close()

        QTimer.singleShot(1500, _shoot)
    napari.run()
