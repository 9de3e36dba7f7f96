"""Panels share one state per viewer: the Explorer follows changes made elsewhere, and a
checkpoint loaded from the training panel renders the Explorer's CT through its enhancer."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_explorer_follows_the_shared_state(make_napari_viewer, qtbot, monkeypatch):
    from fedsim_app.pipeline import SampleState
    from fedsim_napari._qt.explorer import ExplorerWidget
    from fedsim_napari.state import shared_state

    monkeypatch.setattr(ExplorerWidget, "build_coarse_in_background", False)

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    _, training = viewer.window.add_plugin_dock_widget("fedsim", "FedSim training")
    state = shared_state(viewer)
    assert widget.app_state is state and training.app_state is state
    qtbot.waitUntil(lambda: widget.settled, timeout=120_000)
    state.sample = SampleState.random(5, "B")  # e.g. from another panel
    assert widget.site.currentText() == "B" and widget.seed.value() == 5
    assert widget.sliders.values()[0] == round(state.sample.params[0], 2)
    qtbot.waitUntil(lambda: widget.settled and widget.result.state.site == "B",
                    timeout=120_000)


def test_loaded_checkpoint_enhances_the_explorer(make_napari_viewer, qtbot, tmp_path,
                                                monkeypatch):
    from fedsim_app.cli import main
    from fedsim_app.cohort.generate import generate_cohort
    from fedsim_napari._qt.explorer import ExplorerWidget

    # before the widget exists: its first render would start a matrix build otherwise
    monkeypatch.setattr(ExplorerWidget, "build_coarse_in_background", False)

    generate_cohort(tmp_path / "cohort", sites="A", cases=3, size=32, seed=0)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text('preset = "smoke"\nphase1_epochs = 1\nphase2_epochs = 1\n'
                   'phase3_epochs = 1\nslices_per_step = 2\ncoarse_matrix = false\n')
    run = tmp_path / "run"
    assert main(["train", "--cohort", str(tmp_path / "cohort"), "--site", "A", "--labels",
                 "1", "--config", str(cfg), "--out", str(run)]) == 0
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    qtbot.waitUntil(lambda: widget.settled, timeout=120_000)
    assert "no enhancer" in widget.slices.layers["ct"].name
    widget.app_state.set_checkpoint(run / "checkpoint.pt")
    qtbot.waitUntil(lambda: "A" in widget.model.enhancers, timeout=120_000)
    qtbot.waitUntil(lambda: widget.settled and widget.result.ct_source != "", timeout=120_000)
    qtbot.waitUntil(lambda: widget.slices.layers["ct"].name == "CT slices (site enhancer)",
                    timeout=120_000)
    assert "site enhancer" in widget.provenance.text()
