"""Resolution presets and the parameter state the pipeline renders."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.shape.params import N_PARAMS


@dataclass(frozen=True)
class PipelinePreset:
    """Resolutions of one pipeline run (the chain's :class:`ChainConfig`).

    Parameters
    ----------
    name : preset name
    label_size : voxels per axis of the label volume and the CT slices
    coarse_size : voxels per axis of the material map and coarse CT; must divide
        ``label_size`` (the atlas material map is the block mean over the labels)
    fov_mm : field of view of every volume, about the mean heart's centre
    """

    name: str
    label_size: int
    coarse_size: int = 16
    fov_mm: float = 208.0

    def __post_init__(self) -> None:
        if self.label_size < self.coarse_size or self.label_size % self.coarse_size:
            raise FedSimError(f"preset {self.name!r}: coarse_size {self.coarse_size} must divide "
                              f"label_size {self.label_size}")

    @property
    def block(self) -> int:
        """Label voxels per coarse voxel along each axis."""
        return self.label_size // self.coarse_size

    def chain_config(self):
        """The chain's configuration (:class:`fedsim_app.models.generator.ChainConfig`)."""
        from fedsim_app.models.generator import ChainConfig

        return ChainConfig(label_size=self.label_size, coarse_size=self.coarse_size,
                           fov_mm=self.fov_mm)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PipelinePreset:
        return cls(**d)


#: ``paper``: the reference paper's 128³ labels over a 16³ material map. ``interactive``:
#: 64³ labels, what a 2-core CPU renders in tens of milliseconds (the Explorer's default).
PRESETS: dict[str, PipelinePreset] = {
    "paper": PipelinePreset("paper", label_size=128, coarse_size=16),
    "interactive": PipelinePreset("interactive", label_size=64, coarse_size=16),
}
DEFAULT_PRESET = "interactive"


def get_preset(name: str) -> PipelinePreset:
    """The preset called ``name`` (``paper`` or ``interactive``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise FedSimError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


@dataclass(frozen=True)
class SampleState:
    """What the pipeline renders: 21 shape parameters in [-1, 1], a seed and a site.

    ``site`` is a site key (``fedsim_app.sites``, e.g. ``"A"``): the model renders
    through that site's scanner and enhancer. ``seed`` is the draw behind
    :meth:`random` (and the latent of the generators, once they are trained).
    """

    params: tuple[float, ...] = (0.0,) * N_PARAMS
    seed: int = 0
    site: str = "A"

    def __post_init__(self) -> None:
        p = tuple(float(np.clip(v, -1.0, 1.0)) for v in np.asarray(self.params, float).ravel())
        if len(p) != N_PARAMS:
            raise FedSimError(f"need {N_PARAMS} shape parameters, got {len(p)}")
        object.__setattr__(self, "params", p)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "site", str(self.site).strip().upper())

    def replace(self, **changes) -> SampleState:
        d = asdict(self)
        d.update(changes)
        return SampleState(**d)

    def to_dict(self) -> dict:
        return {"params": list(self.params), "seed": self.seed, "site": self.site}

    @classmethod
    def from_dict(cls, d: dict) -> SampleState:
        return cls(tuple(d["params"]), int(d["seed"]), str(d["site"]))

    @classmethod
    def random(cls, seed: int, site: str = "A") -> SampleState:
        """Parameters drawn from the shape model's prior with ``seed``
        (:class:`fedsim_app.shape.ShapeSampler`, the one sampler of shape parameters)."""
        from fedsim_app.shape.sampling import ShapeSampler

        return cls(tuple(ShapeSampler().sample(int(seed))[0]), seed, site)
