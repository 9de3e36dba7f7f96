"""Latent mode of the Explorer under Xvfb: a checkpoint's latent space by sliders, random
draws and training cases, the slice on screen first, three sites side by side, and what
the user is told when there is no usable checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from latent_checkpoint import bundle

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _no_default_checkpoint(monkeypatch):
    """These tests decide which checkpoint exists (the default one may ship)."""
    from fedsim_napari._qt import explorer, latent_box

    monkeypatch.setattr(latent_box, "default_checkpoint", lambda: None)
    monkeypatch.setattr(explorer.ExplorerWidget, "build_coarse_in_background", False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return bundle(tmp_path_factory.mktemp("latent"), sites=("A", "B"))


def _click(qtbot, button):
    """A left click; Qt's enum, not an int, which PyQt6 refuses."""
    from qtpy.QtCore import Qt

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _open(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    qtbot.waitUntil(lambda: widget.settled, timeout=120_000)
    return viewer, widget


def _filled(widget, qtbot):
    qtbot.waitUntil(lambda: widget.settled and widget.result.latent is not None
                    and widget._complete() and not widget._fill.isActive(), timeout=180_000)


def _latent(widget, checkpoint, qtbot):
    widget.app_state.set_checkpoint(checkpoint)
    widget.mode.setCurrentIndex(widget.mode.findData("latent"))
    qtbot.waitUntil(lambda: widget.latent_box.model is not None, timeout=120_000)
    _filled(widget, qtbot)


def test_without_a_checkpoint_latent_mode_says_so(make_napari_viewer, qtbot):
    from napari.utils.notifications import notification_manager

    viewer, widget = _open(make_napari_viewer, qtbot)
    shape_result = widget.result
    n = len(notification_manager.records)
    widget.mode.setCurrentIndex(widget.mode.findData("latent"))
    seen = [str(r.message) for r in notification_manager.records[n:]]
    assert widget.app_state.mode == "latent" and widget.pages.currentIndex() == 1
    box = widget.latent_box
    assert "No trained checkpoint" in box.notice.text()
    assert not box.sliders.isEnabled() and not box.random_button.isEnabled()
    assert "No trained checkpoint" in widget.status.text()
    assert any("No trained checkpoint" in m for m in seen)
    qtbot.wait(200)
    assert widget.result is shape_result  # nothing rendered in its place
    widget.mode.setCurrentIndex(widget.mode.findData("shape"))
    assert widget.pages.currentIndex() == 0


def test_a_bad_checkpoint_is_a_notification(make_napari_viewer, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    viewer, widget = _open(make_napari_viewer, qtbot)
    n = len(notification_manager.records)
    widget.app_state.set_checkpoint(bad)
    widget.mode.setCurrentIndex(widget.mode.findData("latent"))
    qtbot.waitUntil(lambda: widget.latent_box.error is not None, timeout=60_000)
    assert "broken.pt" in widget.latent_box.notice.text()
    seen = [str(r.message) for r in notification_manager.records[n:]]
    assert any("broken.pt" in m and "Traceback" not in m for m in seen)
    assert not widget.latent_box.sliders.isEnabled()


def test_latent_sliders_random_and_training_cases(make_napari_viewer, qtbot, checkpoint):
    viewer, widget = _open(make_napari_viewer, qtbot)
    _latent(widget, checkpoint, qtbot)
    box, state = widget.latent_box, widget.app_state
    space = box.space()
    r = widget.result
    assert r.latent == state.latent and np.allclose(state.latent, space.mean, atol=1e-5)
    assert "G_material" in r.material_source and "SiteEnhancer" in r.ct_source
    assert "G_material(z, labels)" in widget.provenance.text()
    texts = [lab.text() for lab in box.sliders.findChildren(type(widget.status))]
    assert any(t.startswith("Direction 1 (") and t.endswith("%)") for t in texts)
    assert box.cases.count() == len(space.train_ids) == 4
    # a slider moves z along its direction only
    before = widget.result
    box.sliders.sliders[0].setValue(150)
    _filled(widget, qtbot)
    assert space.coords(state.latent)[0] == pytest.approx(1.5, abs=1e-4)
    assert not np.array_equal(widget.result.labels, before.labels) or \
        not np.array_equal(widget.result.ct_hu, before.ct_hu)
    # Random z: next seed, a draw named by it
    seed = state.sample.seed
    _click(qtbot, box.random_button)
    assert state.sample.seed == seed + 1 and state.latent == space.random(seed + 1)
    assert widget.seed.value() == seed + 1
    _filled(widget, qtbot)
    # back to a training case: its learnt latent, its own nearest case
    box.cases.setCurrentIndex(2)
    _click(qtbot, box.case_button)
    _filled(widget, qtbot)
    assert state.latent == space.training(2)
    assert widget.result.novelty["nearest_by_latent"] == space.train_ids[2]
    assert "close to a training case" in box.nearest.text()
    # nearest training case, one click
    box.sliders.sliders[1].setValue(100)
    _filled(widget, qtbot)
    nearest = widget.result.novelty["nearest_index"]
    _click(qtbot, box.nearest_button)
    assert state.latent == space.training(nearest)
    _filled(widget, qtbot)
    # Reset to mean goes to the centre of the normal in latent mode
    _click(qtbot, widget.reset_button)
    assert np.allclose(state.latent, space.mean, atol=1e-5)
    _filled(widget, qtbot)


def test_slice_on_screen_is_enhanced_first(make_napari_viewer, qtbot, checkpoint):
    viewer, widget = _open(make_napari_viewer, qtbot)
    _latent(widget, checkpoint, qtbot)
    first = []
    widget.displayed.connect(lambda _ms: first.append(widget.result))
    fills = []
    widget.filled.connect(lambda: fills.append(widget.result.slices_enhanced))
    widget.latent_box.sliders.sliders[2].setValue(-120)
    qtbot.waitUntil(lambda: bool(first), timeout=120_000)
    r = first[0]
    k = widget._current_slice()
    assert r.slices_enhanced == 1 and not r.complete
    assert "slices enhanced" in widget.status.text()
    _filled(widget, qtbot)
    assert fills and fills[-1] == r.grid.shape[0]
    whole = widget.result
    np.testing.assert_array_equal(whole.ct_hu[k], r.ct_hu[k])  # the same slice, first or last
    other = (k + 20) % r.grid.shape[0]
    assert not np.allclose(whole.ct_hu[other], r.ct_hu[other])  # filled in since


def test_three_sites_side_by_side(make_napari_viewer, qtbot, checkpoint):
    viewer, widget = _open(make_napari_viewer, qtbot)
    _latent(widget, checkpoint, qtbot)
    box = widget.latent_box
    box.three_sites.setChecked(True)
    qtbot.waitUntil(lambda: isinstance(widget._shown, dict), timeout=120_000)
    _filled(widget, qtbot)
    shown = widget._shown
    assert set(shown) == {"A", "B", "C"}
    names = [layer.name for layer in viewer.layers]
    assert len(names) == 8 and "Labels (shared shape)" in names
    assert "Site A CT (site enhancer)" in names and "Site B CT (site enhancer)" in names
    assert "Site C CT (no enhancer for this site in the checkpoint: coarse CT upsampled)" \
        in names
    assert tuple(viewer.canvas.grid.shape) == (2, 4)
    np.testing.assert_array_equal(shown["A"].labels, shown["C"].labels)
    assert not np.allclose(shown["A"].ct_hu, shown["B"].ct_hu)
    # one slice position for every panel: the grid shares napari's dims
    layer = widget.strip.layers[("ct", "B")]
    np.testing.assert_array_equal(np.asarray(layer.data), shown["B"].ct_hu)
    box.three_sites.setChecked(False)
    qtbot.waitUntil(lambda: not isinstance(widget._shown, dict) and widget.settled,
                    timeout=120_000)
    assert len(viewer.layers) == 4 and set(widget.slices.layers) == {
        "labels", "material", "coarse", "ct"}


def test_site_missing_from_the_checkpoint(make_napari_viewer, qtbot, checkpoint):
    viewer, widget = _open(make_napari_viewer, qtbot)
    _latent(widget, checkpoint, qtbot)
    widget.site.setCurrentText("C")
    assert "not of site C" in widget.latent_box.notice.text()
    assert not widget.latent_box.sliders.isEnabled()
    widget.site.setCurrentText("B")
    assert widget.latent_box.sliders.isEnabled()
    _filled(widget, qtbot)
    assert widget.result.state.site == "B"
