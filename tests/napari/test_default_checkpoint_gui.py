"""The GUI with the shipped default checkpoint (assets/checkpoints/default.pt), as a user
of a fresh clone meets it: latent mode through every site, the checkpoint loaded from the
training panel, and the export panel's default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

DEFAULT = Path(__file__).resolve().parents[2] / "assets" / "checkpoints" / "default.pt"


@pytest.fixture(autouse=True)
def _no_background_matrix_build(monkeypatch):
    from fedsim_napari._qt.explorer import ExplorerWidget

    monkeypatch.setattr(ExplorerWidget, "build_coarse_in_background", False)


def _filled(widget, qtbot):
    qtbot.waitUntil(lambda: widget.settled and widget.result.latent is not None
                    and widget._complete() and not widget._fill.isActive(), timeout=240_000)


def test_latent_mode_uses_the_default_checkpoint(make_napari_viewer, qtbot):
    from fedsim_napari._qt.latent_box import default_checkpoint

    assert DEFAULT.is_file() and Path(default_checkpoint()) == DEFAULT
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    qtbot.waitUntil(lambda: widget.settled, timeout=180_000)
    viewer.mouse_over_canvas = True  # the status bar follows the mouse over the canvas
    viewer.layers.selection.active = widget.slices.layers["ct"]
    widget.mode.setCurrentIndex(widget.mode.findData("latent"))
    qtbot.waitUntil(lambda: widget.latent_box.model is not None, timeout=180_000)
    _filled(widget, qtbot)
    assert "default.pt" in widget.latent_box.notice.text()
    assert widget.slices.layers["ct"].name == "CT slices (site enhancer)"
    assert "CT slices (site enhancer)" in str(viewer.status)  # not the shape mode's name
    assert "site enhancer" in widget.provenance.text()
    assert "Nearest training case" in widget.latent_box.nearest.text()
    widget.latent_box.three_sites.setChecked(True)
    qtbot.waitUntil(lambda: isinstance(widget._shown, dict), timeout=180_000)
    _filled(widget, qtbot)
    names = {layer.name for layer in viewer.layers}
    assert {f"Site {s} CT (site enhancer)" for s in "ABC"} <= names
    shown = widget._shown
    np.testing.assert_array_equal(shown["A"].labels, shown["B"].labels)


def test_training_panel_loads_the_default_checkpoint_into_the_explorer(
        make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, explorer = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    _, training = viewer.window.add_plugin_dock_widget("fedsim", "FedSim training")
    qtbot.waitUntil(lambda: explorer.settled, timeout=180_000)
    assert "no enhancer" in explorer.slices.layers["ct"].name
    training.out.setText(str(DEFAULT.parent))
    training.refresh()
    items = [training.checkpoints.item(i).text() for i in range(training.checkpoints.count())]
    assert str(DEFAULT) in items
    training.checkpoints.setCurrentRow(items.index(str(DEFAULT)))
    training.load_button.click()  # one click
    qtbot.waitUntil(lambda: "A" in explorer.model.enhancers, timeout=180_000)
    qtbot.waitUntil(lambda: explorer.settled
                    and explorer.slices.layers["ct"].name == "CT slices (site enhancer)",
                    timeout=180_000)


def test_export_panel_default_checkpoint(qtbot, tmp_path):
    from fedsim_napari import export_run
    from fedsim_napari._qt.export import ExportWidget

    widget = ExportWidget()
    qtbot.addWidget(widget)
    assert widget.checkpoint.text() == "default"  # what a new user gets
    widget.n.setValue(1)
    widget.size.setValue(32)
    widget.out.setText(str(tmp_path / "out"))
    widget.export_button.click()
    qtbot.waitUntil(lambda: widget.phase != "exporting", timeout=300_000)
    assert widget.phase == "done", widget.job.log
    folder = export_run.dataset_folder(tmp_path / "out")
    assert str(folder) in widget.summary.text() and widget.novelty.rowCount() == 1
    header = [widget.novelty.horizontalHeaderItem(i).text()
              for i in range(widget.novelty.columnCount())]
    assert "latent_distance" in header
