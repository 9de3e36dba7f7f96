"""The "FedSim Explorer" dock: shape or latent sliders, rendered live and side by side.

Two modes: "Shape model" drives the statistical shape model's 21 parameters through the
site's chain; "Latent" moves a trained checkpoint's latent z through its learnt
generators (:mod:`fedsim_napari._qt.latent_box`), the slice on screen enhanced first and
the rest of the volume filled in behind it, optionally through every site side by side.
The controls write the shared :class:`fedsim_napari.state.AppState`; its events move the
controls back and ask ``fedsim_app.pipeline.FedSimModel`` for a render through the
:class:`RenderScheduler`; the results go to the linked views (:mod:`fedsim_napari.views`),
painted in turns of their own (:mod:`fedsim_napari._qt.paint`), with the provenance and
status text of :mod:`fedsim_napari.readout`. Checkpoint enhancers and per-site simulators:
:mod:`fedsim_napari._qt.site_models`. Other panels (training, export) change the same
state and the Explorer follows.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
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
from fedsim_napari._qt.latent_mode import FILL_DELAY_MS, LatentModeMixin
from fedsim_napari._qt.mesh import MeshCanvas, mesh_payload
from fedsim_napari._qt.paint import PaintPacer
from fedsim_napari._qt.site_models import SiteModelsMixin
from fedsim_napari._qt.sliders import ParameterSliders, parameter_labels
from fedsim_napari.readout import provenance, status
from fedsim_napari.state import AppState, shared_state
from fedsim_napari.views import SiteStripLayers, SliceLayers, legend_html
from fedsim_napari.workers import LongJob, RenderScheduler

MODE_NAMES = {"shape": "Shape model", "latent": "Latent"}


class ExplorerWidget(LatentModeMixin, SiteModelsMixin, QWidget):
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
        self.pacer = PaintPacer(
            self, before_paint=lambda ms: self._show_status(self.result, ms),
            draw_meshes=lambda m: self.meshes.update(m, float(self.viewer.dims.point[0])),
            finished=self.scheduler.displayed)
        self.pacer.painted.connect(self._painted)

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
        # the mode on a row of its own: beside site and seed a narrow dock cut its name
        modes = QHBoxLayout()
        modes.addWidget(QLabel("Mode"))
        modes.addWidget(self.mode, 1)
        top = QHBoxLayout()
        top.addWidget(QLabel("Site"))
        top.addWidget(self.site)
        top.addWidget(QLabel("Seed"))
        top.addWidget(self.seed, 1)
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
        layout.addLayout(modes)
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
                and not self.pacer.pending)

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
        """Write a result into the layers; the views are painted in a later turn
        (:mod:`fedsim_napari._qt.paint`)."""
        shown, meshdata, request = rendered
        latent = isinstance(request, LatentRequest)
        result = shown[request.site] if isinstance(shown, dict) else shown
        self.result, self._shown = result, shown
        self.app_state.result = result
        self._shown_fill = latent and request.fill > 0
        self.pacer.hold()
        only = ("ct",) if self._shown_fill else None  # a fill step changes the CT alone
        if isinstance(shown, dict):
            self.slices.clear()
            self.strip.update(shown, only)
        else:
            self.strip.clear()
            self.slices.update(result, only)
        if latent:
            self._latent_shown(shown, request)
        self.pacer.paint(requested_at, None if self._shown_fill else meshdata,
                         self._shown_fill)
        self._thumbnails.start()  # once the sliders rest
        self._prepare_site(result.state.site)

    def _painted(self, latency: float, fill: bool) -> None:
        if fill:  # filling in behind a change is not the change's latency
            self.filled.emit()
            return
        self.latencies_ms.append(latency)
        self.displayed.emit(latency)

    def _show_status(self, result, ready_ms: float) -> None:
        """Provenance and timing of ``result`` (before the paint, so in the same one)."""
        text = provenance(result)
        if self.provenance.text() != text.text:
            self.provenance.setText(text.text)
            self.provenance.setToolTip(text.tooltip)
        text = status(result, ready_ms)
        self.status.setText(text.text)
        self.status.setToolTip(text.tooltip)

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

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.pacer.release()
        super().hideEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.pacer.release()
        self.scheduler.close()
        self.meshes.close()
        super().closeEvent(event)

