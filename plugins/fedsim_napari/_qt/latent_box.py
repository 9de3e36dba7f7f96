"""The Explorer's "Latent" page: a trained checkpoint's latent space under the user's hand.

Sliders over the top principal directions of the checkpoint's fitted latent normal (named
by their share of the variance), "Random z", "Back to a training case", the nearest
training case of what is shown (with one click to show it), and "the same latent through
every site". It loads the checkpoint (:class:`fedsim_app.pipeline.latent.LatentModel`) in
a long job and writes the latent into the shared :class:`AppState`; the Explorer renders.
Without a trained checkpoint it says so, and latent mode stays unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fedsim_app.pipeline.latent_space import COORD_LIMIT, N_DIRECTIONS
from fedsim_napari._qt.sliders import ParameterSliders
from fedsim_napari.state import AppState
from fedsim_napari.workers import LongJob

LATENT_GROUP = "Latent directions"
NO_CHECKPOINT = ("No trained checkpoint: latent mode needs one. Train a site in the FedSim "
                 "training panel (or `fedsim train`) and load its checkpoint here; "
                 "`make assets` builds the default one.")


@dataclass(frozen=True)
class LatentRequest:
    """What the Explorer asks the latent model for (one render)."""

    z: tuple[float, ...]
    site: str
    seed: int
    slice_index: int | None
    fill: int = 0
    three_sites: bool = False
    model: object = field(default=None, compare=False)

    def render(self):
        """Worker thread: a result, or ``{site: result}`` for every site."""
        kwargs = {"seed": self.seed, "slice_index": self.slice_index, "fill": self.fill}
        if self.three_sites:
            return self.model.render_sites(self.z, self.site, **kwargs)
        return self.model.render(self.z, self.site, **kwargs)


def default_checkpoint():
    """The shipped default checkpoint, or None while none ships."""
    from fedsim_app.export.sample import DEFAULT, resolve_checkpoint

    return resolve_checkpoint(DEFAULT)


def _load(path, preset: str, site: str):
    """Worker: the checkpoint's latent model, its first site's parts loaded."""
    from fedsim_app.pipeline.latent import LatentModel

    model = LatentModel(path, preset)
    model.prepare(site if site in model.sites else model.sites[0])
    return model


class LatentBox(QWidget):
    """Latent mode's controls (a page of the Explorer).

    Signals
    -------
    loaded(model) : a checkpoint's latent model is ready (GUI thread)
    """

    loaded = Signal(object)

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.app_state = state
        self.model = None
        self.job: LongJob | None = None
        self.error: str | None = None
        self.notice = QLabel(NO_CHECKPOINT)
        self.notice.setWordWrap(True)
        self.load_button = QPushButton("Load checkpoint…")
        self.sliders = ParameterSliders([f"Direction {i + 1}" for i in range(N_DIRECTIONS)],
                                        groups=((LATENT_GROUP, N_DIRECTIONS),),
                                        limit=COORD_LIMIT)
        self.sliders.setToolTip(f"coordinates along the principal directions of the latent "
                                f"normal, in standard deviations (±{COORD_LIMIT:g})")
        self.random_button = QPushButton("Random z")
        self.random_button.setToolTip("next seed, and a latent drawn with it from the normal "
                                      "fitted to the training latents")
        self.cases = QComboBox()
        self.case_button = QPushButton("Back to this training case")
        self.case_button.setToolTip("the learnt latent of this training volume")
        self.nearest = QLabel("")
        self.nearest.setWordWrap(True)
        lines = self.nearest.fontMetrics().lineSpacing()
        self.nearest.setFixedHeight(3 * lines + 6)  # a new text must not re-layout the dock
        self.nearest_button = QPushButton("Show nearest training case")
        self.three_sites = QCheckBox("Same latent through every site (side by side)")
        self.three_sites.setToolTip("shape and material from this site's generators; each "
                                    "site's scanner and enhancer image them")

        grid = QGridLayout()
        grid.addWidget(self.random_button, 0, 0)
        grid.addWidget(self.load_button, 0, 1)
        grid.addWidget(self.cases, 1, 0)
        grid.addWidget(self.case_button, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addLayout(grid)
        layout.addWidget(self.three_sites)
        layout.addWidget(self.sliders, 1)
        layout.addWidget(self.nearest)
        layout.addWidget(self.nearest_button)

        self.load_button.clicked.connect(self._browse)
        self.random_button.clicked.connect(self.random_z)
        self.case_button.clicked.connect(lambda: self.training_case(self.cases.currentIndex()))
        self.nearest_button.clicked.connect(self.show_nearest)
        self.sliders.moved.connect(self._moved)
        self.three_sites.toggled.connect(state.set_three_sites)
        state.events.three_sites.connect(self._three_sites_changed)
        self._last_nearest = None
        self._enable(False)

    # -- loading ------------------------------------------------------------------------
    def checkpoint_path(self):
        """The checkpoint latent mode uses: the one loaded last, else the default."""
        return self.app_state.checkpoint or default_checkpoint()

    def ensure_loaded(self, preset: str) -> None:
        """Load the checkpoint (in a long job) unless its model for ``preset`` is here."""
        path = self.checkpoint_path()
        if path is None:
            self._unavailable(NO_CHECKPOINT)
            return
        m = self.model
        if m is not None and m.preset.name == preset and str(m.path) == str(path):
            return
        if self.job is not None and self.job.running:
            if self.job.title.endswith(f"{path} ({preset})"):
                return
            self.job.cancel()
        self.model = None
        self._enable(False)
        self.notice.setText(f"Loading the checkpoint {path} …")
        job = LongJob(f"FedSim Explorer: loading the checkpoint {path} ({preset})", _load,
                      path, preset, self.app_state.sample.site)
        job.returned.connect(self._loaded)
        job.failed.connect(self._unavailable)
        self.job = job.start()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A trained checkpoint", "",
                                              "Checkpoints (*.pt)")
        if path:
            self.app_state.set_checkpoint(path)

    def _unavailable(self, message: str) -> None:
        self.model = None
        self.error = message
        self.notice.setText(message)
        self._enable(False)

    def _loaded(self, model) -> None:
        self.model, self.error = model, None
        self.loaded.emit(model)
        self.site_changed()

    def _enable(self, on: bool) -> None:
        for w in (self.sliders, self.random_button, self.cases, self.case_button,
                  self.nearest_button, self.three_sites):
            w.setEnabled(on)

    # -- the site's space ---------------------------------------------------------------
    def space(self):
        """The current site's latent space, or None (no model, or no model of this site)."""
        site = self.app_state.sample.site
        if self.model is None or site not in self.model.sites:
            return None
        return self.model.space(site)

    def site_changed(self) -> None:
        """Names, training cases and the notice for the state's site (a latent kept)."""
        if self.model is None:
            return
        space = self.space()
        site = self.app_state.sample.site
        if space is None:
            self.notice.setText(f"{self.model.path} holds a model of site "
                                f"{', '.join(self.model.sites)}, not of site {site}: pick "
                                f"one of those sites, or load site {site}'s checkpoint.")
            self._enable(False)
            return
        self.notice.setText(f"Checkpoint {self.model.path.name} · site {site}'s G_shape, "
                            f"G_material and enhancer · {len(space.train_ids)} training "
                            "latents")
        self._enable(True)
        self.sliders.set_names(space.names())
        self.cases.blockSignals(True)
        self.cases.clear()
        self.cases.addItems(list(space.train_ids))
        self.cases.blockSignals(False)
        z = self.app_state.latent
        if z is None or len(z) != space.dim:
            self.app_state.set_latent(space.mean)  # the centre of the normal
        self.sync()

    def sync(self) -> None:
        """Sliders follow the state's latent."""
        space, z = self.space(), self.app_state.latent
        if space is not None and z is not None and len(z) == space.dim:
            self.sliders.set_values(np.clip(space.coords(z), -COORD_LIMIT, COORD_LIMIT))

    def request(self, slice_index, fill: int = 0) -> LatentRequest | None:
        """The render the state asks for, or None while latent mode cannot render."""
        s = self.app_state
        if self.space() is None or s.latent is None:
            return None
        return LatentRequest(s.latent, s.sample.site, s.sample.seed, slice_index, fill,
                             s.three_sites, self.model)

    # -- actions ------------------------------------------------------------------------
    def _moved(self, index: int, value: float) -> None:
        space = self.space()
        if space is not None and self.app_state.latent is not None:
            self.app_state.set_latent(space.with_coord(self.app_state.latent, index, value))

    def random_z(self) -> None:
        """Next seed, and a latent drawn with it (the seed names the draw)."""
        space = self.space()
        if space is None:
            return
        seed = self.app_state.sample.seed + 1
        self.app_state.set_latent(space.random(seed))
        self.app_state.set_seed(seed)

    def training_case(self, index: int) -> None:
        """Show training volume ``index``'s learnt latent."""
        space = self.space()
        if space is not None and index >= 0:
            self.cases.setCurrentIndex(index)
            self.app_state.set_latent(space.training(index))

    def show_nearest(self) -> None:
        if self._last_nearest is not None:
            self.training_case(self._last_nearest)

    def _three_sites_changed(self, on: bool) -> None:
        if self.three_sites.isChecked() != on:
            self.three_sites.blockSignals(True)
            self.three_sites.setChecked(on)
            self.three_sites.blockSignals(False)

    def show_result(self, result) -> None:
        """The readout of what is shown: its nearest training case, new or memorised."""
        n = result.novelty
        if not n:
            return
        self._last_nearest = n["nearest_index"]
        d, typical = n["latent_distance"], n["typical_distance"]
        verdict = ("close to a training case (memorised?)" if d < 0.5 * typical
                   else "new: not near any training case")
        text = (f"<b>Nearest training case</b>: {n['nearest_by_latent']}, latent distance "
                f"{d:.2f} (training latents lie {typical:.2f} apart, median) · heart IoU "
                f"{n['heart_iou']:.2f} with {n['nearest_by_iou']} · {verdict}")
        if self.nearest.text() != text:
            self.nearest.setText(text)
