"""The Explorer's models per checkpoint and site: enhancers, coarse simulators.

A mixin of :class:`fedsim_napari._qt.explorer.ExplorerWidget` (it uses the widget's
state, model and ``request``): a checkpoint loaded by another panel gives the shape mode
its site enhancers; a site without a cached coarse system matrix gets one built in the
background, once. Both run as :class:`fedsim_napari.workers.LongJob` (progress,
errors as notifications), never on the GUI thread.
"""

from __future__ import annotations

from fedsim_app.pipeline import FedSimModel
from fedsim_napari.workers import LongJob


def site_enhancers(path) -> dict:
    """``{site: enhancer}`` of a training checkpoint or bundle (worker thread)."""
    from fedsim_app.train.model_io import load_site_models

    return {key: m.nets.enhancer for key, m in load_site_models(path).items()
            if m.nets.enhancer is not None}


class SiteModelsMixin:
    """Checkpoint enhancers and per-site simulators of the Explorer (see the module)."""

    #: build a site's missing coarse system matrix in a worker (minutes once per scanner);
    #: tests switch it off
    build_coarse_in_background = True

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
