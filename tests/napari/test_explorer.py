"""The FedSim Explorer dock in a real viewer (Xvfb): live, linked, stale-free, fails loudly."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _no_background_matrix_build(monkeypatch):
    """A missing coarse system matrix would be built for minutes beyond the test."""
    from fedsim_napari._qt.explorer import ExplorerWidget

    monkeypatch.setattr(ExplorerWidget, "build_coarse_in_background", False)


def _open(viewer, qtbot):
    _, widget = viewer.window.add_plugin_dock_widget("fedsim", "FedSim Explorer")
    _wait(widget, qtbot)
    return widget


def _wait(widget, qtbot, timeout=60_000):
    qtbot.waitUntil(lambda: widget.settled, timeout=timeout)


def _data(widget, key):
    return np.asarray(widget.slices.layers[key].data).copy()


def test_opens_through_manifest_with_mm_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot)
    r = widget.result
    assert set(widget.slices.layers) == {"labels", "material", "coarse", "ct"}
    assert viewer.canvas.grid.enabled
    for key, grid in (("labels", r.grid), ("ct", r.grid), ("coarse", r.coarse_grid),
                      ("material", r.coarse_grid)):
        np.testing.assert_allclose(widget.slices.layers[key].scale, grid.spacing_mm)
    assert r.state.site == "A" and not any(r.state.params)  # site A, mean shape
    assert widget.slices.layers["ct"].name == "CT slices (coarse CT upsampled, no enhancer)"
    assert len(widget.sliders.sliders) == 21
    texts = [lab.text() for lab in widget.sliders.findChildren(type(widget.status))]
    assert any(t.startswith("Mode 1 (") and t.endswith("%)") for t in texts)
    assert "Fix-Mat" in widget.provenance.text() and "no enhancer" in widget.provenance.text()
    assert "Fix-Mat" in widget.provenance.toolTip()
    assert len(widget.meshes.data.vertices) == widget.model.ssm.n_vertices


def test_slider_changes_the_right_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)  # a hidden canvas renders black after updates
    viewer.window._qt_window.resize(1600, 1000)
    widget = _open(viewer, qtbot)
    qtbot.wait(100)
    before = {k: _data(widget, k) for k in widget.slices.layers}
    shots = {}
    for key in ("labels", "ct"):  # what the canvas shows of each layer alone
        for other in widget.slices.layers.values():
            other.visible = other is widget.slices.layers[key]
        shots[key] = viewer.screenshot(canvas_only=True, flash=False)
    for layer in widget.slices.layers.values():
        layer.visible = True
    widget.sliders.sliders[0].setValue(90)  # first shape mode
    _wait(widget, qtbot)
    for key in ("labels", "material", "coarse", "ct"):
        assert not np.array_equal(before[key], _data(widget, key)), key
    # layers are updated in place: the drawn pixels must follow the data
    for key, shot in shots.items():
        for other in widget.slices.layers.values():
            other.visible = other is widget.slices.layers[key]
        after = viewer.screenshot(canvas_only=True, flash=False)
        assert np.abs(after.astype(int) - shot.astype(int)).sum() > 1000, key
    for layer in widget.slices.layers.values():
        layer.visible = True
    # the seed only names random draws: the model renders parameters and site alone
    labels, ct = _data(widget, "labels"), _data(widget, "ct")
    widget.seed.setValue(3)
    _wait(widget, qtbot)
    np.testing.assert_array_equal(labels, _data(widget, "labels"))
    np.testing.assert_array_equal(ct, _data(widget, "ct"))


def test_rapid_moves_end_on_the_last_state(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot)
    shown = []
    widget.scheduler.rendered.connect(lambda rendered, gen, t0: shown.append(rendered[0].state))
    for v in range(-90, 91, 15):  # a drag: 13 values, faster than a render
        widget.sliders.sliders[3].setValue(v)
        qtbot.wait(3)
    _wait(widget, qtbot)
    assert widget.result.state == widget.state()
    assert widget.result.state.params[3] == 0.9
    assert len(shown) < 13  # intermediate states were coalesced, dropped or paced


def test_site_switch_changes_ct_not_labels(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot)
    labels, ct, coarse = (_data(widget, k) for k in ("labels", "ct", "coarse"))
    shape_runs = widget.model.stage_counts["shape"]
    widget.site.setCurrentText("B")
    _wait(widget, qtbot, timeout=120_000)
    np.testing.assert_array_equal(labels, _data(widget, "labels"))
    assert widget.model.stage_counts["shape"] == shape_runs
    assert np.abs(ct - _data(widget, "ct")).max() > 1.0
    assert abs(coarse.mean() - _data(widget, "coarse").mean()) > 1.0


def test_failing_render_shows_notification(make_napari_viewer, qtbot):
    from napari.utils.notifications import notification_manager

    from fedsim_app.errors import FedSimError

    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot)

    def broken(state):
        raise FedSimError("scanner profile is damaged")

    widget.scheduler._render_fn = broken
    n = len(notification_manager.records)
    widget.sliders.sliders[1].setValue(40)
    qtbot.waitUntil(lambda: widget.last_failure is not None, timeout=10_000)
    messages = [str(r.message) for r in notification_manager.records[n:]]
    assert any("could not render" in m and "damaged" in m and "Reset to mean" in m
               for m in messages)


def test_export_current_sample(make_napari_viewer, qtbot, tmp_path):
    from fedsim_app.io import read_nifti

    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot)
    files = widget.export_to(tmp_path / "sample")
    assert {"image.nii.gz", "labels.nii.gz", "params.json"} <= set(files)
    assert len([k for k in files if k.endswith(".ply")]) == 7
    np.testing.assert_array_equal(read_nifti(files["labels.nii.gz"], kind="label").array,
                                  widget.result.labels)


def test_3d_view_follows_the_shape(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = _open(viewer, qtbot)
    before_vertices = widget.meshes.data.vertices.copy()
    before = widget.meshes.render(size=(320, 240))
    assert before[..., :3].std() > 5  # the surfaces are drawn, not an empty canvas
    widget.sliders.sliders[0].setValue(-90)
    _wait(widget, qtbot)
    data = widget.meshes.data
    assert not np.allclose(data.vertices, before_vertices)
    np.testing.assert_allclose(np.linalg.norm(data.normals, axis=1), 1.0, atol=1e-5)
    after = widget.meshes.render(size=(320, 240))
    assert np.abs(after.astype(int) - before.astype(int)).sum() > 1000


def test_slice_position_moves_the_3d_plane(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot)
    z0 = widget.meshes.slice_z_mm
    assert z0 == pytest.approx(float(viewer.dims.point[0]))
    viewer.dims.set_point(0, z0 + 20.0)
    z1 = float(widget.meshes.plane.transform.translate[2])
    assert abs(z1 - z0 - 20.0) < widget.result.grid.spacing_mm[0] + 1e-3


@pytest.mark.slow
def test_preset_switch_rebuilds_layers_in_mm(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot)
    extent = widget.result.grid.extent_mm
    widget.preset.setCurrentText("paper")
    _wait(widget, qtbot)
    assert widget.slices.layers["labels"].data.shape == (128, 128, 128)
    np.testing.assert_allclose(widget.slices.layers["labels"].scale,
                               widget.result.grid.spacing_mm)
    np.testing.assert_allclose(widget.result.grid.extent_mm, extent, rtol=1e-6)
    assert len([layer for layer in viewer.layers]) == 4


def test_hiding_the_dock_never_leaves_the_canvas_frozen(make_napari_viewer, qtbot):
    """Between writing the layers and painting them the canvas holds its updates; a dock
    closed in that moment must give them back."""
    import time

    viewer = make_napari_viewer(show=True)
    widget = _open(viewer, qtbot)
    views = widget.pacer.views_widget()
    # a result arrives (called directly: no event runs until the hide below)
    widget._show((widget.result, widget.meshes.data, widget.result.state), 1,
                 time.perf_counter())
    assert not views.updatesEnabled()  # layers written, paint not yet
    widget.hide()
    assert views.updatesEnabled()



def test_enhanced_ct_is_shown_and_named(make_napari_viewer, qtbot):
    import torch

    from fedsim_napari._qt.explorer import ExplorerWidget

    class Brighter(torch.nn.Module):  # stand-in site enhancer: +100 HU in the heart
        def forward(self, coarse_up, labels, k_frac):
            return coarse_up + 0.1 * (labels > 0)[:, None]

    viewer = make_napari_viewer()
    widget = ExplorerWidget(viewer, enhancers={"B": Brighter()})
    viewer.window.add_dock_widget(widget, name="FedSim Explorer", area="right")
    _wait(widget, qtbot, timeout=180_000)
    assert widget.slices.layers["ct"].name == "CT slices (coarse CT upsampled, no enhancer)"
    # napari's status bar names the active layer under the mouse (here the CT layer)
    viewer.mouse_over_canvas = True  # as the Qt canvas sets it when the mouse enters
    viewer.layers.selection.active = widget.slices.layers["ct"]
    viewer.update_status_from_cursor()
    assert "no enhancer" in str(viewer.status)
    widget.site.setCurrentText("B")
    _wait(widget, qtbot, timeout=120_000)
    assert widget.slices.layers["ct"].name == "CT slices (site enhancer)"
    # the status bar follows the renamed layer, not the name it was created with
    assert "CT slices (site enhancer)" in str(viewer.status), viewer.status
    assert "no enhancer" not in str(viewer.status)
    assert "site enhancer" in widget.provenance.text()
    assert "Brighter" in widget.provenance.toolTip()
    from fedsim_app.models.enhance import upsample_coarse

    coarse = torch.from_numpy(_data(widget, "coarse"))[None]
    plain = upsample_coarse(coarse, widget.result.grid.shape)[0].numpy()
    heart = _data(widget, "labels") > 0
    np.testing.assert_allclose(_data(widget, "ct")[heart], plain[heart] + 100.0, atol=0.1)
    np.testing.assert_allclose(_data(widget, "ct")[~heart], plain[~heart], atol=0.1)
