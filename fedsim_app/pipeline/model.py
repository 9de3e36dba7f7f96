"""``FedSimModel``: a parameter state and a site → one result record, stage by stage.

Stages and what each depends on (its cache key)::

    shape    params            → vertices, meshes, labels      (SSM loaded once)
    scene    params, seed      → torso + heart classes
    material params, seed, site → μ map (Fix-Mat) and its coarse block mean
    sensor   params, seed, site → coarse CT, full CT

So a site switch reruns only material and sensor stages, and a slider move never
reloads the SSM. ``stage_counts`` counts real computations (tests read it).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

from fedsim_app.io.grid import Grid
from fedsim_app.pipeline import stages
from fedsim_app.pipeline.config import DEFAULT_PRESET, PipelinePreset, SampleState, get_preset


@dataclass(frozen=True)
class SampleResult:
    """One rendered sample. Arrays are (z, y, x) on ``grid`` (full) or ``coarse_grid``.

    Attributes
    ----------
    state : what was rendered
    grid, coarse_grid : the full-resolution and coarse volumes' grids (mm, RAS+)
    meshes : ``{structure: (vertices (V, 3) world xyz mm, faces (F, 3))}``
    labels : uint8 internal heart labels 0..7
    scene : uint8 scene classes (torso tissues, 20 + heart label)
    material_mu_per_mm : float32 μ map at the site's effective energy
    coarse_material_mu_per_mm : float32 block mean of the μ map
    coarse_ct_hu, full_ct_hu : float32 HU
    material_source, ct_source : how the material map and the full CT were made
        (Fix-Mat and the simulator's render until those generators are trained)
    seconds : wall time of each stage computed for this result (cached ones absent)
    """

    state: SampleState
    preset: PipelinePreset
    grid: Grid
    coarse_grid: Grid
    meshes: dict
    labels: np.ndarray
    scene: np.ndarray
    material_mu_per_mm: np.ndarray
    coarse_material_mu_per_mm: np.ndarray
    coarse_ct_hu: np.ndarray
    full_ct_hu: np.ndarray
    material_source: str
    ct_source: str
    energy_keV: float
    seconds: dict = field(default_factory=dict)

    def record(self) -> dict:
        """The JSON-able parameter record (what an export writes beside the volumes)."""
        from fedsim_app import __version__
        from fedsim_app.shape import PARAM_NAMES

        return {
            "format_version": 1,
            "fedsim_version": __version__,
            "state": self.state.to_dict(),
            "params_named": dict(zip(PARAM_NAMES, self.state.params, strict=True)),
            "preset": self.preset.to_dict(),
            "grid": {"shape": list(self.grid.shape), "spacing_mm": list(self.grid.spacing_mm),
                     "origin_mm": list(self.grid.origin_mm)},
            "coarse_grid": {"shape": list(self.coarse_grid.shape),
                            "spacing_mm": list(self.coarse_grid.spacing_mm),
                            "origin_mm": list(self.coarse_grid.origin_mm)},
            "energy_keV": self.energy_keV,
            "material_source": self.material_source,
            "ct_source": self.ct_source,
        }


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value

    def hit(self, key):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None


class FedSimModel:
    """Renders :class:`SampleState` records into :class:`SampleResult` records.

    Parameters
    ----------
    preset : a :class:`PipelinePreset` or its name (default ``interactive``)
    ssm_path : an SSM file (default: the shipped atlas SSM)
    cache_size : results kept per stage

    Examples
    --------
    >>> model = FedSimModel("interactive")                     # doctest: +SKIP
    >>> result = model.render(SampleState(site="site_b"))      # doctest: +SKIP
    >>> result.full_ct_hu.shape                                # doctest: +SKIP
    (64, 64, 64)
    """

    def __init__(self, preset: PipelinePreset | str = DEFAULT_PRESET, *,
                 ssm_path: str | None = None, cache_size: int = 4):
        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        self.ssm_path = ssm_path
        self.stage_counts: Counter = Counter()
        self._ssm = None
        self._cache = {k: _LRU(cache_size) for k in ("shape", "scene", "material", "sensor")}
        self._sites: dict[str, dict] = {}

    # -- fixed parts ------------------------------------------------------------------
    @property
    def ssm(self):
        """The shape model, loaded on first use."""
        if self._ssm is None:
            from fedsim_app.shape import load_atlas_ssm

            self.stage_counts["ssm"] += 1
            self._ssm = load_atlas_ssm(self.ssm_path)
        return self._ssm

    @property
    def grid(self) -> Grid:
        from fedsim_app.shape import default_grid

        return default_grid(self.ssm, self.preset.label_size, self.preset.fov_mm)

    @property
    def coarse_grid(self) -> Grid:
        g, b = self.grid, self.preset.block
        centre = g.index_to_world(np.array(g.shape) / 2 - 0.5)
        return Grid.centered(self.preset.coarse_size, tuple(s * b for s in g.spacing_mm),
                             tuple(float(c) for c in centre))

    def site(self, name: str) -> dict:
        """Profile, material table and coarse renderer of a site (built once)."""
        if name not in self._sites:
            from fedsim_app.ctsim import load_scanner

            self.stage_counts["site"] += 1
            profile = load_scanner(name)
            self._sites[name] = {"profile": profile, "lut": stages.atlas_material_lut(profile),
                                 "coarse": stages.CoarseRenderer(
                                     profile, self.preset.coarse_size,
                                     self.coarse_grid.spacing_mm[0]),
                                 "full": _LRU(2)}
        return self._sites[name]

    def site_ready(self, name: str) -> bool:
        """Whether the site's coarse simulator has its fast (matrix) path."""
        return self.site(name)["coarse"].matrix_ready

    def prepare_site(self, name: str) -> None:
        """Build the site's coarse system matrix (slow the first time; run it in a worker).
        Until then coarse CTs of this site take diffct's direct path (about a second)."""
        self.site(name)["coarse"].build()

    def full_renderer(self, site: str, seed: int) -> stages.FullRenderer:
        entry = self.site(site)
        found = entry["full"].hit(seed)
        if found is None:
            found = entry["full"].put(seed, stages.FullRenderer(
                entry["profile"], self.grid, seed, noise=self.preset.noise))
        return found

    # -- stages -------------------------------------------------------------------------
    def _stage(self, name: str, key, compute, seconds: dict):
        found = self._cache[name].hit(key)
        if found is not None:
            return found
        t0 = time.perf_counter()
        value = compute()
        seconds[name] = time.perf_counter() - t0
        self.stage_counts[name] += 1
        return self._cache[name].put(key, value)

    def shape_stage(self, state: SampleState, seconds: dict | None = None) -> dict:
        """Vertices, meshes and labels of the 21 parameters."""
        from fedsim_app.shape import voxelize

        def compute():
            verts = self.ssm.decode(np.asarray(state.params))
            return {"vertices": verts, "meshes": stages.meshes_of(self.ssm, verts),
                    "labels": voxelize(self.ssm, verts, self.grid)}

        return self._stage("shape", state.params, compute, {} if seconds is None else seconds)

    def render(self, state: SampleState) -> SampleResult:
        """Render ``state`` (cached stages are reused)."""
        seconds: dict = {}
        shape = self.shape_stage(state, seconds)
        key_scene = (state.params, state.seed)
        key_site = (*key_scene, state.site)
        site = self.site(state.site)

        def scene():
            torso = stages.torso_params(self.preset, self.grid, state.seed)
            return stages.build_scene(shape["labels"], torso, self.grid)

        scene_classes = self._stage("scene", key_scene, scene, seconds)

        def material():
            mu = site["lut"][scene_classes]
            return mu, stages.block_mean(mu, self.preset.block)

        mu, mu_coarse = self._stage("material", key_site, material, seconds)

        def sensor():
            return site["coarse"](mu_coarse), self.full_renderer(state.site, state.seed)(mu)

        coarse_hu, full_hu = self._stage("sensor", key_site, sensor, seconds)
        energy = float(site["profile"].effective_energy_keV)
        return SampleResult(
            state=state, preset=self.preset, grid=self.grid, coarse_grid=self.coarse_grid,
            meshes=shape["meshes"], labels=shape["labels"], scene=scene_classes,
            material_mu_per_mm=mu, coarse_material_mu_per_mm=mu_coarse,
            coarse_ct_hu=coarse_hu, full_ct_hu=full_hu,
            material_source=stages.FIX_MAT.format(energy=energy),
            ct_source=stages.SIMULATOR_CT, energy_keV=energy, seconds=seconds)

    def fit(self, labels: np.ndarray, grid: Grid, **fit_kwargs):
        """Fit the SSM to a label map (``shape.fit_labels``); returns its ``FitResult``."""
        from fedsim_app.shape import FitConfig, fit_labels

        return fit_labels(self.ssm, labels, grid, FitConfig(**fit_kwargs))
