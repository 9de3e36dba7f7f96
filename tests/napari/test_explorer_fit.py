""""Fit to labels layer" runs the SSM fit on an open Labels layer and sets the sliders."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _no_background_matrix_build(monkeypatch):
    """A missing coarse system matrix would be built for minutes beyond the test."""
    from fedsim_napari._qt.explorer import ExplorerWidget

    monkeypatch.setattr(ExplorerWidget, "build_coarse_in_background", False)


def test_fit_sets_sliders_and_shows_dice(make_napari_viewer, qtbot):
    from fedsim_app.pipeline import FedSimModel, PipelinePreset, SampleState

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    target = np.zeros(21)
    target[0], target[2] = 0.7, -0.5
    truth = FedSimModel(PipelinePreset("fit", 48, 16)).render(SampleState(tuple(target)))
    viewer.add_labels(truth.labels, name="MM-WHS case", **truth.grid.napari_kwargs())
    assert widget.fit_box.layer.currentText() == "MM-WHS case"
    assert widget.fit_box.layer.findText(widget.slices.layers["labels"].name) == -1 \
        if widget.slices.layers else True
    worker = widget.fit_to_labels()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.fit_box.last_fit is not None, timeout=120_000)
    assert "Dice" in widget.fit_box.status.text()
    assert np.mean(list(widget.fit_box.last_fit.dice.values())) > 0.7
    values = np.array(widget.sliders.values())
    assert values[0] > 0.2  # the dominant mode is recovered with its sign
    # the state keeps the fit's exact values; the sliders show them to 0.01
    assert np.allclose(widget.state().params, values, atol=0.005)
    qtbot.waitUntil(lambda: not widget.scheduler.busy, timeout=60_000)


def test_fit_without_labels_layer_explains(make_napari_viewer, qtbot):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    n = len(notification_manager.records)
    assert widget.fit_to_labels() is None
    assert any("open a Labels layer" in str(r.message)
               for r in notification_manager.records[n:])
    qtbot.waitUntil(lambda: not widget.scheduler.busy, timeout=60_000)


def test_fit_an_mmwhs_file_opened_with_the_reader(make_napari_viewer, qtbot, tmp_path):
    """The issue's path: File > Open an MM-WHS label file (codes 205..850, its own frame
    far from the SSM's), then "Fit to labels layer"."""
    from fedsim_app.io import Grid, Volume, from_internal, write_nifti
    from fedsim_app.pipeline import FedSimModel, PipelinePreset, SampleState

    truth = FedSimModel(PipelinePreset("fit", 48, 16)).render(SampleState())
    g = truth.grid
    moved = Grid(g.shape, g.spacing_mm, tuple(o + 120.0 for o in g.origin_mm))  # scanner frame
    path = write_nifti(Volume(from_internal(truth.labels, "mmwhs"), moved, kind="label"),
                       tmp_path / "ct_train_1001_label.nii.gz")
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    (layer,) = viewer.open(path, plugin="fedsim")
    assert layer.data.max() == 7  # MM-WHS codes became internal ones
    assert widget.fit_box.layer.currentText() == layer.name
    widget.fit_to_labels()
    qtbot.waitUntil(lambda: widget.fit_box.last_fit is not None, timeout=120_000)
    assert np.mean(list(widget.fit_box.last_fit.dice.values())) > 0.7
    assert np.linalg.norm(widget.fit_box.last_fit.offset_mm) > 100  # found where it sits
    assert max(abs(v) for v in widget.state().params[17:20]) < 0.5  # shown in the SSM frame
    assert "mm from where it sits" in widget.fit_box.status.text()
    qtbot.waitUntil(lambda: not widget.scheduler.busy, timeout=60_000)
