"""The Explorer's latent-mode behaviour: mode switches, the slice on screen, fill-in steps.

A mixin of :class:`fedsim_napari._qt.explorer.ExplorerWidget` (it uses the widget's
state, scheduler, latent page and result); kept apart so the Explorer's file holds its
layout and its state wiring.
"""

from __future__ import annotations

import numpy as np

#: latent mode fills in the volume's other slices once the controls rest this long
FILL_DELAY_MS = 250
#: seconds of enhancer work per fill step: a change waits for at most one step
FILL_STEP_S = 0.25


class LatentModeMixin:
    """Latent mode of the Explorer (see the module docstring)."""

    def _current_slice(self) -> int | None:
        """Index of the axial slice on screen in the label grid (None before a result)."""
        if self.result is None:
            return None
        centres = self.result.grid.axis_centers()[0]
        return int(np.argmin(np.abs(centres - float(self.viewer.dims.point[0]))))

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

    def _latent_shown(self, shown, request) -> None:
        """Readout of a latent result; schedule the next fill-in step if slices remain."""
        self.latent_box.show_result(self.result)
        enhance_s = sum(r.seconds.get("enhance", 0.0) for r in (
            shown.values() if isinstance(shown, dict) else [shown]))
        if self._shown_fill and enhance_s > 0:  # about FILL_STEP_S of work per step
            per_slice = enhance_s / max(request.fill, 1)
            self._fill_slices = int(max(1, min(32, FILL_STEP_S / max(per_slice, 1e-4))))
        if not self._complete():
            self._fill.setInterval(1 if self._shown_fill else FILL_DELAY_MS)
            self._fill.start()
