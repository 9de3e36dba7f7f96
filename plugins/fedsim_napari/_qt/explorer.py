"""The "FedSim Explorer" dock: shape or latent sliders, rendered live and side by side.

Two modes: "Shape model" drives the statistical shape model's 21 parameters through the
site's chain; "Latent" moves a trained checkpoint's latent z through its learnt
generators (:mod:`fedsim_napari._qt.latent_box`), the slice on screen enhanced first and
the rest of the volume filled in behind it, optionally through every site side by side.
The controls write the shared :class:`fedsim_napari.state.AppState`; its events move the
controls back and ask ``fedsim_app.pipeline.FedSimModel`` for a render through the
:class:`RenderScheduler`; the results go to the linked views (:mod:`fedsim_napari.views`).
Other panels (training, export) change the same state and the Explorer follows.
"""

from __future__ import annotations

import time

from qtpy.QtCore import QEvent, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from fedsim_app.pipeline import (
    DEFAULT_PRESET,
    PRESETS,
    FedSimModel,
    SampleState,
    export_result,
)
from fedsim_napari._qt.fit_box import FitBox
from fedsim_napari._qt.latent_box import LatentBox, LatentRequest
from fedsim_napari._qt.mesh import MeshCanvas, mesh_payload
from fedsim_napari._qt.sliders import ParameterSliders, parameter_labels
from fedsim_napari.state import AppState, shared_state
from fedsim_napari.views import SiteStripLayers, SliceLayers, ct_description, legend_html
from fedsim_napari.workers import LongJob, RenderScheduler


def site_enhancers(path) -> dict:
    """``{site: enhancer}`` of a training checkpoint or bundle (worker thread)."""
    from fedsim_app.train.model_io import load_site_models

    return {key: m.nets.enhancer for key, m in load_site_models(path).items()
            if m.nets.enhancer is not None}


MESH_DELAY_MS = 15
# a real timer (not 0, which Qt posts as an event into the same turn) lets other timers
# and input events run between the layer writes and the paint
PAINT_DELAY_MS = 1
PAINT_FALLBACK_MS = 250
#: latent mode fills in the volume's other slices once the controls rest this long
FILL_DELAY_MS = 250
#: seconds of enhancer work per fill step: a change waits for at most one step
FILL_STEP_S = 0.25
MODE_NAMES = {"shape": "Shape model", "latent": "Latent"}


class ExplorerWidget(QWidget):
    """Sliders → shape, material map, coarse CT, CT slices and meshes, all live.

    Parameters
    ----------
    napari_viewer : the viewer whose grid shows the 2D views
    preset : pipeline preset name (``interactive`` by default; ``paper`` is 128³)
    site : key of the site shown first (``fedsim_app.sites``)
    enhancers : ``{site key: enhancer module}``; a site without one shows its coarse CT
        upsampled
    state : the application state to share with other panels (a new one by default)

    Signals
    -------
    displayed(float) : a result is painted in the 2D views; milliseconds since its request
    filled() : latent mode painted more enhanced slices of the shown volume

    Attributes
    ----------
    build_coarse_in_background : build a site's missing coarse system matrix in a worker
        (minutes once per scanner); tests switch it off
    """

    build_coarse_in_background = True
    displayed = Signal(float)
    filled = Signal()

    def __init__(self, napari_viewer, preset: str = DEFAULT_PRESET, site: str = "A",
                 parent=None, *, enhancers: dict | None = None,
                 state: AppState | None = None):
        super().__init__(parent)
        from fedsim_app.sites import load_sites

        self.setObjectName("FedSimExplorer")
        self.viewer = napari_viewer
        if state is None:
            state = shared_state(napari_viewer, preset=preset,
                                 sample=SampleState(site=site.upper()))
        self.app_state = state
        self.model = FedSimModel(state.preset, enhancers=enhancers)
        self.result = None
        self._shown = None  # the result, or {site: result} in the three-site view
        self.latencies_ms: list[float] = []
        self.last_failure = None
        self._pending_meshes = None
        self._pending_paint = None
        self._painting = None  # the window whose next update request paints the views
        self._paint_fallback = QTimer(self)  # a window that never paints (minimised)
        self._paint_fallback.setSingleShot(True)
        self._paint_fallback.setInterval(PAINT_FALLBACK_MS)
        self._paint_fallback.timeout.connect(self._painted)
        self._preparing: set[str] = set()
        self._thumbnails = QTimer(self)
        self._thumbnails.setSingleShot(True)
        self._thumbnails.setInterval(300)

        self.scheduler = RenderScheduler(self._render, wait_for_display=True, parent=self)
        self.scheduler.rendered.connect(self._show)
        self.scheduler.failed.connect(self._show_failure)
        self.slices = SliceLayers(napari_viewer)
        self.strip = SiteStripLayers(napari_viewer)
        self._shown_fill = False  # the result being painted is a fill step
        self._fill_slices = 4  # slices per fill step, adapted to the enhancer's speed
        self._fill = QTimer(self)
        self._fill.setSingleShot(True)
        self._fill.setInterval(FILL_DELAY_MS)
        self._fill.timeout.connect(self._fill_step)
        self.meshes = MeshCanvas()

        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText(self.model.preset.name)
        self.preset.setToolTip("\n".join(
            f"{p.name}: {p.label_size}³ labels, {p.coarse_size}³ material"
            for p in PRESETS.values()))
        self.site = QComboBox()
        for i, (key, record) in enumerate(load_sites().items()):
            self.site.addItem(key)
            self.site.setItemData(i, f"{record.title}; scanner {record.scanner.name}",
                                  Qt.ToolTipRole)
        self.site.setCurrentText(state.sample.site)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("seed of 'Random sample': it names the drawn shape parameters "
                             "(the model renders the parameters through the site's chain)")
        self.seed.setValue(state.sample.seed)
        self.sliders = ParameterSliders(parameter_labels(self.model.ssm))
        self.sliders.set_values(state.sample.params)
        self.mode = QComboBox()
        for key, name in MODE_NAMES.items():
            self.mode.addItem(name, key)
        self.mode.setToolTip("Shape model: the SSM's parameters through the site's chain.\n"
                             "Latent: a trained checkpoint's latent through its learnt "
                             "G_shape, G_material and enhancer.")
        self.latent_box = LatentBox(state)
        self.random_button = QPushButton("Random sample")
        self.reset_button = QPushButton("Reset to mean")
        self.fit_box = FitBox(napari_viewer, self.model,
                              own_layers=lambda: set(self.slices.layers.values()),
                              on_params=lambda p: self.set_state(self.state().replace(params=p)))
        self.export_button = QPushButton("Export current sample…")
        self.provenance = QLabel()
        self.status = QLabel("rendering…")
        for label in (self.provenance, self.status):
            label.setWordWrap(True)
        # fixed heights: a new status text must not re-layout the dock (and repaint the 3D
        # canvas) on every render
        lines = self.status.fontMetrics().lineSpacing()
        self.status.setFixedHeight(2 * lines + 6)
        self.provenance.setFixedHeight(2 * lines + 6)
        legend = QLabel(legend_html())
        legend.setWordWrap(True)
        self._layout(legend)

        # controls -> state; state -> controls and render
        self.site.currentTextChanged.connect(state.set_site)
        self.preset.currentTextChanged.connect(state.set_preset)
        self.seed.valueChanged.connect(state.set_seed)
        # the moved slider only: the others keep their exact values (a fit's, say)
        self.sliders.moved.connect(state.set_param)
        self.mode.currentIndexChanged.connect(
            lambda i: state.set_mode(self.mode.itemData(i)))
        state.events.mode.connect(self._mode_changed)
        state.events.latent.connect(self._latent_changed)
        state.events.three_sites.connect(self.request)
        self.latent_box.loaded.connect(self._latent_loaded)
        state.events.sample.connect(self._sample_changed)
        state.events.preset.connect(self._preset_changed)
        state.events.checkpoint.connect(self._checkpoint_changed)
        self._thumbnails.timeout.connect(self.slices.refresh_thumbnails)
        self.random_button.clicked.connect(self.random_sample)
        self.reset_button.clicked.connect(self.reset_to_mean)
        self.export_button.clicked.connect(self._export_clicked)
        napari_viewer.dims.events.current_step.connect(self._slice_moved)
        self.request()

    def _layout(self, legend: QLabel) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Site"))
        top.addWidget(self.site, 1)
        top.addWidget(QLabel("Seed"))
        top.addWidget(self.seed)
        top.addWidget(QLabel("Mode"))
        top.addWidget(self.mode)
        buttons = QHBoxLayout()
        buttons.addWidget(self.random_button)
        buttons.addWidget(self.reset_button)
        buttons.addWidget(self.preset)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.sliders)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        shape_page = QWidget()
        page = QVBoxLayout(shape_page)
        page.setContentsMargins(0, 0, 0, 0)
        page.addWidget(scroll, 1)
        page.addWidget(self.fit_box)
        self.pages = QStackedWidget()
        self.pages.addWidget(shape_page)
        self.pages.addWidget(self.latent_box)
        self.meshes.widget.setMinimumHeight(220)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(buttons)
        layout.addWidget(legend)
        layout.addWidget(self.meshes.widget, 2)
        layout.addWidget(self.provenance)
        layout.addWidget(self.pages, 3)
        layout.addWidget(self.export_button)
        layout.addWidget(self.status)
        self.setMinimumWidth(380)

    @property
    def settled(self) -> bool:
        """The newest state is rendered and fully shown (2D views painted, meshes too)."""
        s = self.scheduler
        return (not s.busy and s.applied_generation == s.generation and self.result is not None
                and self._pending_paint is None and self._pending_meshes is None)

    # -- state ------------------------------------------------------------------------
    def state(self) -> SampleState:
        """The sample shown (or being rendered)."""
        return self.app_state.sample

    def set_state(self, state: SampleState) -> None:
        """Show ``state`` (one render, whatever changed)."""
        self.app_state.sample = state

    def _sample_changed(self, sample: SampleState) -> None:
        """The state changed (here or in another panel): controls follow, then a render."""
        for w in (self.site, self.seed):
            w.blockSignals(True)
        self.site.setCurrentText(sample.site)
        self.seed.setValue(sample.seed)
        for w in (self.site, self.seed):
            w.blockSignals(False)
        self.sliders.set_values(sample.params)
        if self.app_state.mode == "latent":
            self.latent_box.site_changed()
        self.request()

    def request(self, *_, fill: int = 0) -> int | None:
        """Render the current state (coalesced; newest wins). In latent mode, ``fill``
        more slices are enhanced besides the one on screen. None: nothing to render (latent
        mode without a usable checkpoint; the latent page says why)."""
        if self.app_state.mode != "latent":
            return self.scheduler.request(self.state())
        self._fill.stop()
        request = self.latent_box.request(self._current_slice(), fill)
        if request is None:
            self.status.setText(f"latent mode: {self.latent_box.notice.text()}")
            return None
        return self.scheduler.request(request)

    def _current_slice(self) -> int | None:
        """Index of the axial slice on screen in the label grid (None before a result)."""
        import numpy as np

        if self.result is None:
            return None
        centres = self.result.grid.axis_centers()[0]
        return int(np.argmin(np.abs(centres - float(self.viewer.dims.point[0]))))

    # -- latent mode --------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """``"shape"`` or ``"latent"``."""
        self.app_state.set_mode(mode)

    def _mode_changed(self, mode: str) -> None:
        index = self.mode.findData(mode)
        if self.mode.currentIndex() != index:
            self.mode.blockSignals(True)
            self.mode.setCurrentIndex(index)
            self.mode.blockSignals(False)
        self.pages.setCurrentIndex(1 if mode == "latent" else 0)
        if mode == "latent":
            self.latent_box.ensure_loaded(self.model.preset.name)
            if self.latent_box.model is None and self.latent_box.job is None:
                from napari.utils.notifications import show_info

                show_info(f"FedSim Explorer: {self.latent_box.notice.text()}")
        self.request()

    def _latent_loaded(self, model) -> None:
        if self.app_state.mode == "latent":
            self.request()

    def _latent_changed(self, z) -> None:
        self.latent_box.sync()
        if self.app_state.mode == "latent":
            self.request()

    def _fill_step(self) -> None:
        """Enhance more of the shown latent volume (after the controls rested)."""
        r = self.result
        if (self.app_state.mode == "latent" and r is not None and r.latent is not None
                and not self._complete() and self.scheduler.current):
            self.request(fill=self._fill_slices)

    def _complete(self) -> bool:
        shown = self._shown if isinstance(self._shown, dict) else {"": self.result}
        return all(r.complete for r in shown.values())

    def set_preset(self, name: str) -> None:
        """Switch resolution preset (``interactive`` 64³, ``paper`` 128³): a new model."""
        self.app_state.set_preset(name)

    def _preset_changed(self, name: str) -> None:
        if self.preset.currentText() != name:
            self.preset.blockSignals(True)
            self.preset.setCurrentText(name)
            self.preset.blockSignals(False)
        if name == self.model.preset.name:
            return
        self.model = FedSimModel(name, enhancers=self.model.enhancers)
        if self.app_state.mode == "latent":
            self.latent_box.ensure_loaded(name)
        self.request()

    def _checkpoint_changed(self, path) -> None:
        """A trained checkpoint was loaded (training panel): render with its enhancer, and
        latent mode with all of its generators."""
        if path is None:
            return
        if self.app_state.mode == "latent":
            self.latent_box.ensure_loaded(self.model.preset.name)
        job = LongJob(f"FedSim Explorer: loading the checkpoint {path}", site_enhancers, path)
        job.returned.connect(lambda enhancers: self._use_enhancers(path, enhancers))
        job.start()

    def _use_enhancers(self, path, enhancers: dict) -> None:
        from napari.utils.notifications import show_info

        self.model = FedSimModel(self.model.preset.name,
                                 enhancers={**self.model.enhancers, **enhancers})
        show_info(f"FedSim Explorer: site {', '.join(enhancers) or '(none)'} enhancer from "
                  f"{path}")
        self.request()

    def random_sample(self) -> None:
        """Next seed, and parameters (latent mode: a latent) drawn with it (reproducible:
        the seed names it)."""
        if self.app_state.mode == "latent":
            self.latent_box.random_z()
        else:
            self.app_state.random_sample()

    def reset_to_mean(self) -> None:
        space = self.latent_box.space() if self.app_state.mode == "latent" else None
        if space is not None:
            self.app_state.set_latent(space.mean)
        elif self.app_state.mode != "latent":
            self.app_state.reset_to_mean()

    # -- results ------------------------------------------------------------------------
    def _render(self, request):
        """Worker thread: the engine's result (latent mode with three sites: ``{site:
        result}``) and the meshes ready for the GPU."""
        if isinstance(request, LatentRequest):
            shown = request.render()
            result = shown[request.site] if isinstance(shown, dict) else shown
        else:
            shown = result = self.model.render(request)
        fill = isinstance(request, LatentRequest) and request.fill > 0  # same shape
        return shown, None if fill else mesh_payload(result.meshes), request

    def _show(self, rendered, generation: int, requested_at: float) -> None:
        """Write a result into the layers; the views are painted in the next turn.

        Writing the four layers (~10 ms) and napari's paint of the grid plus the window's
        composition (~25 ms under software OpenGL) would otherwise share one event-loop
        turn; apart, neither stalls the loop for long.
        """
        shown, meshdata, request = rendered
        latent = isinstance(request, LatentRequest)
        result = shown[request.site] if isinstance(shown, dict) else shown
        self.result, self._shown = result, shown
        self.app_state.result = result
        self._shown_fill = latent and request.fill > 0
        views = self._views_widget()
        if views is not None:
            views.setUpdatesEnabled(False)
        only = ("ct",) if self._shown_fill else None  # a fill step changes the CT alone
        if isinstance(shown, dict):
            self.slices.clear()
            self.strip.update(shown, only)
        else:
            self.strip.clear()
            self.slices.update(result, only)
        if latent:
            self.latent_box.show_result(result)
            enhance_s = sum(r.seconds.get("enhance", 0.0) for r in (
                shown.values() if isinstance(shown, dict) else [shown]))
            if self._shown_fill and enhance_s > 0:  # about FILL_STEP_S of work per step
                per_slice = enhance_s / max(request.fill, 1)
                self._fill_slices = int(max(1, min(32, FILL_STEP_S / max(per_slice, 1e-4))))
            if not self._complete():
                self._fill.setInterval(1 if self._shown_fill else FILL_DELAY_MS)
                self._fill.start()
        self._pending_paint = requested_at
        self._pending_meshes = None if self._shown_fill else meshdata
        QTimer.singleShot(PAINT_DELAY_MS, self._paint_views)
        self._thumbnails.start()  # once the sliders rest
        self._prepare_site(result.state.site)

    def _views_widget(self):
        """The napari window's central widget (canvas and dims), found through Qt's parent
        chain of this dock; None while the widget is not docked in a napari window."""
        node = self.parent()
        while node is not None and not isinstance(node, QMainWindow):
            node = node.parent()
        return node.centralWidget() if node is not None else None

    def _paint_views(self) -> None:
        """Let the 2D views paint, with the status line, in one update of the window; the
        3D canvas follows in a later turn."""
        if self._pending_paint is None:
            return
        self._show_status(self.result, 1000 * (time.perf_counter() - self._pending_paint))
        views = self._views_widget()
        if views is None or not views.isVisible():
            self._painted()
            return
        if not views.updatesEnabled():
            views.setUpdatesEnabled(True)  # posts the window's update request
        self._painting = views.window()
        self._painting.installEventFilter(self)
        self._paint_fallback.start()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        # The window's update request (low priority, so after anything posted now) paints
        # the views; a call posted while it runs comes after that paint.
        if obj is self._painting and event.type() == QEvent.UpdateRequest:
            obj.removeEventFilter(self)
            self._painting = None
            self._paint_fallback.stop()
            QTimer.singleShot(0, self._painted)
        return False

    def _painted(self) -> None:
        if self._painting is not None:  # the fallback fired
            self._painting.removeEventFilter(self)
            self._painting = None
        requested_at, self._pending_paint = self._pending_paint, None
        if requested_at is None:
            return
        QTimer.singleShot(MESH_DELAY_MS, self._show_meshes)
        if self._shown_fill:  # filling in behind a change is not the change's latency
            self.filled.emit()
            return
        latency = 1000 * (time.perf_counter() - requested_at)
        self.latencies_ms.append(latency)
        self.displayed.emit(latency)

    def _show_status(self, result, ready_ms: float) -> None:
        """Provenance and timing of ``result`` (before the paint, so in the same one)."""
        material = "Fix-Mat atlas" if result.material_source.startswith("Fix-Mat") \
            else "generated"
        ct = ct_description(result)
        if result.latent is not None:
            material = "G_material(z)"
            if result.slices_enhanced is not None and not result.complete \
                    and result.ct_source.startswith("site enhancer"):
                ct += " (filling in)"
        provenance = (f"<b>Material</b>: {material}, {result.energy_keV:.1f} keV · "
                      f"<b>CT</b>: {ct}")
        if self.provenance.text() != provenance:
            self.provenance.setText(provenance)
            self.provenance.setToolTip(f"Material map: {result.material_source}.\n"
                                       f"CT slices: {result.ct_source}.")
        stages = ", ".join(f"{k} {1000 * v:.0f}" for k, v in result.seconds.items())
        g = result.grid
        self.status.setText(
            f"{g.shape[0]}³ × {g.spacing_mm[0]:.2f} mm ({result.preset.name}) · "
            f"site {result.state.site} · ready {ready_ms:.0f} ms after the change"
            + (f" · {result.slices_enhanced}/{g.shape[0]} slices enhanced"
               if result.latent is not None else ""))
        self.status.setToolTip(f"stage times (ms): {stages or 'all cached'}")

    def _prepare_site(self, site: str) -> None:
        """Build a site's coarse system matrix once, in the background, if it is missing."""
        from napari.utils.notifications import show_info

        if (not self.build_coarse_in_background or site in self._preparing
                or self.model.site_ready(site)):
            return
        self._preparing.add(site)
        show_info(f"FedSim Explorer: building the coarse CT simulator of site {site} once (a few "
                  "minutes on a CPU, then cached). Until then its coarse CT takes the "
                  "direct diffct path, about a second per update.")
        job = LongJob(f"FedSim Explorer: building the coarse CT simulator of site {site}",
                      self.model.prepare_site, site)
        job.returned.connect(lambda _: show_info(f"FedSim Explorer: site {site} is ready."))
        job.start()

    def _show_meshes(self) -> None:
        if self._pending_meshes is not None:
            self.meshes.update(self._pending_meshes, float(self.viewer.dims.point[0]))
            self._pending_meshes = None
        # the 3D canvas paints in this turn's update request; the next render after it
        QTimer.singleShot(PAINT_DELAY_MS, self.scheduler.displayed)

    def _show_failure(self, state, failure) -> None:
        from napari.utils.notifications import show_error

        self.last_failure = failure
        self.status.setText(f"render failed: {failure.exc}")
        show_error(
            f"FedSim Explorer could not render site {state.site}, seed {state.seed}: "
            f"{failure.exc}. Try 'Reset to mean' or another site; if it keeps failing, "
            "check the installation in the FedSim status dock (Plugins menu).")

    def _slice_moved(self, event=None) -> None:
        self.meshes.set_slice(float(self.viewer.dims.point[0]))
        if self.app_state.mode == "latent" and self.result is not None \
                and not self._complete():
            self.request()  # the slice now on screen is enhanced first

    # -- fit ----------------------------------------------------------------------------
    def fit_to_labels(self, layer=None) -> LongJob | None:
        """Fit the SSM to a Labels layer in a worker; sets the sliders and shows Dice."""
        return self.fit_box.fit(layer)

    # -- export -------------------------------------------------------------------------
    def _export_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the current sample to")
        if folder:
            self.export_to(folder)

    def export_to(self, folder) -> dict | None:
        """Write the shown sample (NIfTI, PLY, JSON) into ``folder``."""
        from napari.utils.notifications import show_error, show_info

        from fedsim_app.errors import FedSimError

        if self.result is None:
            show_error("FedSim Explorer: nothing to export yet; wait for the first render.")
            return None
        try:
            files = export_result(self.result, folder)
        except (FedSimError, OSError) as exc:
            show_error(f"FedSim Explorer could not export to {folder}: {exc}. "
                       "Choose a folder you can write to.")
            return None
        show_info(f"FedSim Explorer: exported {len(files)} files to {folder}")
        return files

    def _release_views(self) -> None:
        """Never leave napari's canvas with its updates held (the dock hides or closes
        between a layer write and its paint)."""
        views = self._views_widget()
        if views is not None and not views.updatesEnabled():
            views.setUpdatesEnabled(True)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._release_views()
        super().hideEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._release_views()
        self.scheduler.close()
        self.meshes.close()
        super().closeEvent(event)

