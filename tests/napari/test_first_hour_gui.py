"""What `make run` shows first (issue 16): a window that fills the screen without a window
manager, slider groups that fold, a fit selector that says what to open."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gui]


@pytest.fixture(autouse=True)
def _no_background_matrix_build(monkeypatch):
    """A missing coarse system matrix would be built for minutes beyond the test."""
    from fedsim_napari._qt.explorer import ExplorerWidget

    monkeypatch.setattr(ExplorerWidget, "build_coarse_in_background", False)


def _explorer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    qtbot.waitUntil(lambda: widget.result is not None and not widget.scheduler.busy,
                    timeout=60_000)
    return viewer, widget


def test_window_fills_the_screen_without_a_window_manager(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication

    from fedsim_napari.launch import fit_to_screen

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    fit_to_screen(viewer)
    QApplication.processEvents()
    screen = (window.screen() or QApplication.primaryScreen()).availableGeometry()
    qtbot.waitUntil(lambda: window.geometry().size() == screen.size(), timeout=5_000)
    assert window.geometry().topLeft() == screen.topLeft()


def test_folding_shape_modes_brings_every_pose_slider_into_view(make_napari_viewer, qtbot):
    from qtpy.QtCore import QRect
    from qtpy.QtWidgets import QApplication

    from fedsim_napari._qt.sliders import MODES_GROUP, POSE_GROUP
    from fedsim_napari.launch import fit_to_screen

    viewer, widget = _explorer(make_napari_viewer, qtbot)
    fit_to_screen(viewer)
    panel = widget.sliders
    viewport = panel.parentWidget()  # the scroll area's viewport

    def in_view(w) -> bool:
        QApplication.processEvents()
        if not w.isVisible():
            return False
        top_left = w.mapTo(viewport, w.rect().topLeft())
        return viewport.rect().contains(QRect(top_left, w.size()))

    pose = panel.sliders[14:]
    assert panel.expanded(MODES_GROUP) and panel.expanded(POSE_GROUP)
    panel.set_expanded(MODES_GROUP, False)
    qtbot.waitUntil(lambda: all(in_view(s) for s in pose), timeout=5_000)
    assert not any(s.isVisible() for s in panel.sliders[:14])
    panel.set_expanded(MODES_GROUP, True)
    panel.set_expanded(POSE_GROUP, False)
    qtbot.waitUntil(lambda: all(in_view(s) for s in panel.sliders[:14]), timeout=5_000)
    # folding changes only what is shown: the values and the state stay
    assert len(widget.state().params) == 21


def test_fit_selector_says_to_open_a_label_file(make_napari_viewer, qtbot):
    from fedsim_napari._qt.fit_box import FIT_PLACEHOLDER

    viewer, widget = _explorer(make_napari_viewer, qtbot)
    # the Explorer's own Labels layer is in the layer list, but is no fit target
    assert any(layer.name == "Labels (SSM shape)" for layer in viewer.layers)
    assert widget.fit_box.layer.count() == 0
    assert widget.fit_box.layer.placeholderText() == FIT_PLACEHOLDER == "open a label file to fit"
    assert "not a fit target" in widget.fit_box.layer.toolTip()
    assert not widget.fit_box.button.isEnabled()
