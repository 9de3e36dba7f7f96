"""``FedSimModel``: a parameter state and a site → one result record, through the chain.

The model is :class:`fedsim_app.models.generator.Generator` (one per site); this class
caches its stages for interactive use. Stages and what each depends on (its cache key)::

    shape    params        → vertices, meshes, labels      (SSM loaded once)
    material params, site  → material map and μ (16³)
    sensor   params, site  → coarse CT (16³), CT slices (enhanced, or the coarse CT upsampled)

So a site switch reruns only the material and sensor stages, and a slider move never
reloads the SSM. ``stage_counts`` counts real computations (tests read it).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

from fedsim_app.io.grid import Grid
from fedsim_app.pipeline.config import DEFAULT_PRESET, PipelinePreset, SampleState, get_preset


@dataclass(frozen=True)
class SampleResult:
    """One rendered sample. Arrays are (z, y, x) numpy on ``grid`` or ``coarse_grid``.

    Attributes
    ----------
    state : what was rendered
    grid, coarse_grid : the label grid and the coarse grid (same field of view; mm, RAS+)
    meshes : ``{structure: (vertices (V, 3) world xyz mm, faces (F, 3))}``
    labels : uint8 internal heart labels 0..7 on ``grid``
    material_mu_per_mm : float32 μ map on ``coarse_grid`` at the site's effective energy
    coarse_ct_hu : float32 coarse CT on ``coarse_grid``
    ct_hu : float32 CT on ``grid``: the site enhancer's slices, or the coarse CT upsampled
    material_source, ct_source : how the material map and the CT were made
    seconds : wall time of each stage computed for this result (cached ones absent)
    latent : the latent z it was rendered from (latent mode), or None
    slices_enhanced : axial slices of ``ct_hu`` the enhancer has made so far (latent mode;
        the others are the coarse CT upsampled), or None when the whole volume is done
    novelty : the nearest training case (latent mode): ``LatentModel`` fills it
    """

    state: SampleState
    preset: PipelinePreset
    site: dict
    grid: Grid
    coarse_grid: Grid
    meshes: dict
    labels: np.ndarray
    material_mu_per_mm: np.ndarray
    coarse_ct_hu: np.ndarray
    ct_hu: np.ndarray
    material_source: str
    ct_source: str
    energy_keV: float
    seconds: dict = field(default_factory=dict)
    latent: tuple[float, ...] | None = None
    slices_enhanced: int | None = None
    novelty: dict | None = None

    @property
    def complete(self) -> bool:
        """Whether every CT slice is final (none is waiting for the enhancer)."""
        return self.slices_enhanced is None or self.slices_enhanced >= self.grid.shape[0]

    def record(self) -> dict:
        """The JSON-able parameter record (what an export writes beside the volumes)."""
        from fedsim_app import __version__
        from fedsim_app.shape import PARAM_NAMES

        def grid_dict(g: Grid) -> dict:
            return {"shape": list(g.shape), "spacing_mm": list(g.spacing_mm),
                    "origin_mm": list(g.origin_mm)}

        return {
            "format_version": 2,
            "fedsim_version": __version__,
            "state": self.state.to_dict(),
            "params_named": dict(zip(PARAM_NAMES, self.state.params, strict=True)),
            "preset": self.preset.to_dict(),
            "site": self.site,
            "grid": grid_dict(self.grid),
            "coarse_grid": grid_dict(self.coarse_grid),
            "energy_keV": self.energy_keV,
            "material_source": self.material_source,
            "ct_source": self.ct_source,
            **({"latent": list(self.latent)} if self.latent is not None else {}),
            **({"novelty": self.novelty} if self.novelty is not None else {}),
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
    enhancers : ``{site key: enhancer module}`` (``fedsim_app.models.enhancer``); a site
        without one shows its coarse CT upsampled
    device : torch device (default: ``fedsim_app.device.default_device()``)
    threads : torch CPU threads while rendering (0 leaves torch's setting). One sample's
        tensors are small (a 4096² matrix-vector product, a 64³ gather): with two threads
        on a busy 2-core machine the material and sensor stages took 3-20 times longer
        than with one (31 vs 1.4 ms, 67 vs 21-29 ms, measured 2026-12-02 under load).

    Examples
    --------
    >>> model = FedSimModel("interactive")                     # doctest: +SKIP
    >>> result = model.render(SampleState(site="B"))           # doctest: +SKIP
    >>> result.ct_hu.shape                                     # doctest: +SKIP
    (64, 64, 64)
    """

    def __init__(self, preset: PipelinePreset | str = DEFAULT_PRESET, *,
                 ssm_path: str | None = None, cache_size: int = 4,
                 enhancers: dict | None = None, device=None, threads: int = 1):
        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        self.ssm_path = ssm_path
        self.enhancers = dict(enhancers or {})
        self.device = device
        self.threads = int(threads)
        self.stage_counts: Counter = Counter()
        self._ssm = None
        self._cache = {k: _LRU(cache_size) for k in ("shape", "material", "sensor")}
        self._generators: dict = {}

    # -- fixed parts ------------------------------------------------------------------
    @property
    def ssm(self):
        """The shape model, loaded on first use."""
        if self._ssm is None:
            from fedsim_app.shape import load_atlas_ssm

            self.stage_counts["ssm"] += 1
            self._ssm = load_atlas_ssm(self.ssm_path)
        return self._ssm

    def generator(self, site: str):
        """The chain of a site (built once per site key)."""
        from fedsim_app.models.generator import Generator
        from fedsim_app.sites import get_site

        record = get_site(site)
        if record.key not in self._generators:
            self.stage_counts["site"] += 1
            self._generators[record.key] = Generator(
                record, ssm=self.ssm, config=self.preset.chain_config(),
                enhancer=self.enhancers.get(record.key), device=self.device)
        return self._generators[record.key]

    @property
    def grid(self) -> Grid:
        from fedsim_app.shape import default_grid

        return default_grid(self.ssm, self.preset.label_size, self.preset.fov_mm)

    @property
    def coarse_grid(self) -> Grid:
        from fedsim_app.models.generator import coarse_grid_of

        return coarse_grid_of(self.grid, self.preset.coarse_size)

    def site_ready(self, site: str) -> bool:
        """Whether the site's coarse simulator has its fast (matrix) path."""
        return self.generator(site).scanner.matrix_ready

    def prepare_site(self, site: str) -> None:
        """Build the site's coarse system matrix (slow the first time; run it in a worker).
        Until then coarse CTs of this site take diffct's direct path (about a second)."""
        self.generator(site).scanner.build()

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
        """Vertices, meshes and labels of the 21 parameters (site-independent)."""
        import torch

        from fedsim_app.models.shape_stage import hard_labels, meshes_of

        def compute():
            verts = self.ssm.decode(np.asarray(state.params))  # (V, 3)
            labels = hard_labels(self.ssm, torch.from_numpy(verts)[None], self.grid)[0]
            return {"vertices": verts, "meshes": meshes_of(self.ssm, verts),
                    "labels": labels.numpy().astype(np.uint8), "labels_t": labels}

        return self._stage("shape", state.params, compute, {} if seconds is None else seconds)

    def render(self, state: SampleState) -> SampleResult:
        """Render ``state`` (cached stages are reused)."""
        from fedsim_app.shape.soft import torch_threads

        with torch_threads(self.threads):
            return self._render(state)

    def _render(self, state: SampleState) -> SampleResult:
        import torch

        seconds: dict = {}
        shape = self.shape_stage(state, seconds)
        gen = self.generator(state.site)
        key = (state.params, state.seed, gen.site.key)

        def material():
            labels = shape["labels_t"].to(gen.device)[None]  # (1, n, n, n)
            with torch.no_grad():
                mat, source = gen.material(labels)
                return gen.mu(mat), source

        mu, material_source = self._stage("material", key, material, seconds)

        def sensor():
            labels = shape["labels_t"].to(gen.device)[None]
            with torch.no_grad():
                coarse = gen.coarse_ct(mu)
                ct, source = gen.enhance(coarse, labels)
            return _numpy(coarse[0]), _numpy(ct[0]), source

        coarse_hu, ct_hu, ct_source = self._stage("sensor", key, sensor, seconds)
        return SampleResult(
            state=state, preset=self.preset, site=gen.site.to_dict(), grid=gen.grid,
            coarse_grid=gen.coarse_grid, meshes=shape["meshes"], labels=shape["labels"],
            material_mu_per_mm=_numpy(mu[0]), coarse_ct_hu=coarse_hu, ct_hu=ct_hu,
            material_source=material_source, ct_source=ct_source,
            energy_keV=gen.site.effective_energy_keV, seconds=seconds)

    def fit(self, labels: np.ndarray, grid: Grid, **fit_kwargs):
        """Fit the SSM to a label map (``shape.fit_labels``); returns its ``FitResult``."""
        from fedsim_app.shape import FitConfig, fit_labels

        return fit_labels(self.ssm, labels, grid, FitConfig(**fit_kwargs))


def _numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)
