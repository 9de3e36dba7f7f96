"""The FedSim dock opens through the manifest in a real viewer (Xvfb)."""

import pytest

pytestmark = pytest.mark.gui


def test_dock_opens_through_manifest(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim")
    assert dock is not None
    assert widget.versions.rowCount() > 5
    packages = {widget.versions.item(r, 0).text() for r in range(widget.versions.rowCount())}
    assert {"fedsim", "torch", "napari", "diffct"} <= packages
    assert "torch device" in widget.header.text()
    widget.refresh()  # idempotent
    assert widget.versions.rowCount() == len(widget.info["versions"])
