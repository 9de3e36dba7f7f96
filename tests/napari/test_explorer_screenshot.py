"""A full-window screenshot of the Explorer (look at it: tests/napari/ writes it to
``$FEDSIM_SCREENSHOT`` when set, else to the test's tmp folder)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _no_background_matrix_build(monkeypatch):
    """A missing coarse system matrix would be built for minutes beyond the test."""
    from fedsim_napari._qt.explorer import ExplorerWidget

    monkeypatch.setattr(ExplorerWidget, "build_coarse_in_background", False)


def test_full_window_screenshot(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    s = widget.scheduler
    qtbot.waitUntil(lambda: not s.busy and widget.result is not None, timeout=60_000)
    viewer.window._qt_window.resize(1600, 1000)
    qtbot.wait(200)
    viewer.reset_view()
    path = Path(os.environ.get("FEDSIM_SCREENSHOT", tmp_path / "explorer.png"))
    image = viewer.screenshot(str(path), canvas_only=False)
    assert path.is_file()
    h, w = image.shape[:2]
    assert w >= 1200 and h >= 700
    # the four slice views are not blank: the canvas area has many distinct grey levels
    assert len(np.unique(image[..., :3].reshape(-1, 3), axis=0)) > 500
