"""The plugin's application state: one evented object every panel reads and writes.

It holds no Qt object and imports neither Qt nor napari, so it is tested without a
display. Panels bind their controls to it and listen to its events (psygnal, which napari
ships); the Explorer renders whenever something that changes the picture changes.

Example
-------
>>> state = AppState()
>>> seen = []
>>> _ = state.events.sample.connect(lambda s: seen.append(s.site))
>>> state.set_site("B")
>>> seen
['B']
"""

from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from psygnal import evented

from fedsim_app.pipeline import DEFAULT_PRESET, PRESETS, SampleState

#: Explorer modes: "shape" drives the statistical shape model's 21 parameters directly;
#: "latent" moves a trained checkpoint's latent z through its learnt generators.
MODES = ("shape", "latent")

#: Fields whose change changes the rendered picture (the preset changes the model itself).
RENDER_FIELDS = ("sample", "mode", "checkpoint", "latent", "three_sites")


def _site_keys() -> tuple[str, ...]:
    from fedsim_app.sites import load_sites

    return tuple(load_sites())


# a result holds arrays: compare it by identity, not by value
@evented(equality_operators={"result": operator.is_, "checkpoint": operator.eq,
                             "latent": operator.eq})
@dataclass(eq=False)
class AppState:
    """What the user is looking at, shared by the Explorer, training and export panels.

    Attributes
    ----------
    preset : pipeline resolution preset (``interactive`` 64³, ``paper`` 128³)
    sample : the shape parameters, seed and site rendered (one frozen value, so a change of
        several of them is one event and one render)
    mode : one of :data:`MODES`
    checkpoint : the trained checkpoint the user loaded last (a path), or None
    latent : the latent z (32 values) latent mode renders, or None before one is chosen;
        ``sample.site`` says whose generators make it and ``sample.seed`` names its texture
    three_sites : latent mode shows the latent through every site side by side
    result : the last result shown (``fedsim_app.pipeline.SampleResult``), or None

    Events
    ------
    ``state.events.<field>`` fires with the new value when a field changes;
    ``state.events.all`` relays every one of them.
    """

    preset: str = DEFAULT_PRESET
    sample: SampleState = field(default_factory=SampleState)
    mode: str = "shape"
    checkpoint: str | None = None
    latent: tuple | None = None
    three_sites: bool = False
    result: object = None

    # -- validated setters (the controls call these; bad values never land) -------------
    def set_preset(self, name: str) -> None:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        self.preset = name

    def set_site(self, site: str) -> None:
        key = str(site).strip().upper()
        if key not in _site_keys():
            raise ValueError(f"unknown site {site!r}; choose one of {', '.join(_site_keys())}")
        self.sample = self.sample.replace(site=key)

    def set_seed(self, seed: int) -> None:
        self.sample = self.sample.replace(seed=int(seed))

    def set_params(self, params) -> None:
        """All 21 shape parameters at once (clipped to [-1, 1] by ``SampleState``)."""
        self.sample = self.sample.replace(params=tuple(params))

    def set_param(self, index: int, value: float) -> None:
        params = list(self.sample.params)
        params[index] = float(value)
        self.set_params(params)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.mode = mode

    def set_checkpoint(self, path) -> None:
        """Remember a trained checkpoint to render with; it must exist."""
        if path is None:
            self.checkpoint = None
            return
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"checkpoint {p} does not exist; train a site first "
                             "(Training panel or `fedsim train`) or pick another file")
        self.checkpoint = str(p)

    def set_latent(self, z) -> None:
        """The latent z to render in latent mode (a sequence of floats; None: none yet)."""
        self.latent = None if z is None else tuple(float(v) for v in z)

    def set_three_sites(self, on: bool) -> None:
        self.three_sites = bool(on)

    # -- whole-sample actions -------------------------------------------------------------
    def random_sample(self) -> None:
        """Next seed, and shape parameters drawn with it (the seed names the draw)."""
        s = self.sample
        self.sample = SampleState.random(s.seed + 1, s.site)

    def reset_to_mean(self) -> None:
        s = self.sample
        self.sample = SampleState(seed=s.seed, site=s.site)


# one state per viewer, so docks opened separately from the Plugins menu share it
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_state(viewer, **defaults) -> AppState:
    """The state every FedSim panel of ``viewer`` shares (made with ``defaults`` the first
    time); a new one when there is no viewer."""
    if viewer is None:
        return AppState(**defaults)
    if viewer not in _SHARED:
        _SHARED[viewer] = AppState(**defaults)
    return _SHARED[viewer]
