"""The generator: one differentiable torch chain from a latent (or 21 parameters) to CT.

::

    z ─[G_shape]→ params (B, 21) ─SSM decode→ vertices (B, V, 3)
      → labels (B, n, n, n): hard (voxelized) for output, soft (B, 8, n, n, n) for gradients
      → material map (B, 1, 16, 16, 16): [G_material](z), or Fix-Mat of the labels
      → μ (B, 16, 16, 16) at the site's effective energy
      → coarse CT (B, 16, 16, 16) HU through the site's scanner (diffct, differentiable)
      → CT (B, n, n, n) HU: every axial slice through the [site enhancer], or the coarse
        CT upsampled when there is none

Every network is optional: explicit parameters stand in for G_shape, Fix-Mat for
G_material, the upsampled coarse CT for the enhancer; the result's provenance lines say
which ran. The stages are public for training (:func:`soft_label_probs`,
:func:`label_neighbourhoods`, :func:`fix_mat`, :func:`material_to_mu`, :func:`coarse_ct`,
:func:`coarse_target`, :func:`enhancer_conditioning`).

Examples
--------
>>> import torch
>>> from fedsim_app.models.generator import ChainConfig, Generator
>>> gen = Generator("A", config=ChainConfig(label_size=32))        # doctest: +SKIP
>>> out = gen(params=torch.zeros(2, 21))                           # doctest: +SKIP
>>> out.labels.shape, out.coarse_hu.shape, out.ct_hu.shape         # doctest: +SKIP
(torch.Size([2, 32, 32, 32]), torch.Size([2, 16, 16, 16]), torch.Size([2, 32, 32, 32]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from fedsim_app.errors import FedSimError
from fedsim_app.io.grid import Grid
from fedsim_app.models.coarse_ct import CoarseScanner, coarse_ct, coarse_target
from fedsim_app.models.enhance import (
    enhance,
    enhancer_conditioning,
    enhancer_source,
    upsample_coarse,
)
from fedsim_app.models.material import (
    fix_mat,
    fix_mat_source,
    label_attenuation,
    material_to_mu,
    mu_to_material,
)
from fedsim_app.models.shape_stage import (
    check_params_tensor,
    decode,
    frame_grid,
    generator_ssm,
    hard_labels,
    label_neighbourhoods,
    meshes_of,
    soft_label_probs,
)
from fedsim_app.shape.soft import SoftConfig

LATENT_DIM = 32
EXPLICIT_PARAMS = "explicit shape parameters (no shape generator)"


@dataclass(frozen=True)
class ChainConfig:
    """Resolutions of the chain.

    Parameters
    ----------
    label_size : voxels per axis of the label grid and the CT slices
    coarse_size : voxels per axis of the material map and coarse CT; divides label_size
    fov_mm : field of view of both grids, about the SSM's mean heart
    soft : soft-occupancy settings of the differentiable labels
    slice_chunk : axial slices per volume and enhancer call; 0 (default) sizes the calls
        for the CPU's cache (:func:`fedsim_app.models.enhance.slices_per_call`)
    precision : the enhancer's convolutions at inference, ``"float32"`` (default) or
        ``"bfloat16"`` (faster where the CPU has bf16 instructions; not bit-equal)
    """

    label_size: int = 64
    coarse_size: int = 16
    fov_mm: float = 208.0
    soft: SoftConfig = field(default_factory=SoftConfig)
    slice_chunk: int = 0
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.label_size < self.coarse_size or self.label_size % self.coarse_size:
            raise FedSimError(f"coarse_size {self.coarse_size} must divide label_size "
                              f"{self.label_size}")


def coarse_grid_of(grid: Grid, size: int) -> Grid:
    """The ``size``³ grid over the same field of view as ``grid`` (same centre)."""
    centre = grid.center_mm
    spacing = tuple(s * n / size for s, n in zip(grid.spacing_mm, grid.shape, strict=True))
    return Grid.centered(size, spacing, tuple(float(c) for c in centre))


@dataclass(frozen=True)
class ChainResult:
    """One batch through the chain. Tensors are on the chain's device, (z, y, x) order.

    Attributes
    ----------
    site : the site's key
    params : (B, 21) shape parameters in [-1, 1]
    vertices : (B, V, 3) world mm
    labels : (B, n, n, n) int64 hard labels 0..7 on ``grid``
    soft_labels : (B, 8, n, n, n) label probabilities (differentiable) or None
    material : (B, 1, s, s, s) material map (μ/μ_water − 1) on ``coarse_grid``
    mu : (B, s, s, s) attenuation 1/mm at ``energy_keV``
    coarse_hu : (B, s, s, s) coarse CT, HU
    ct_hu : (B, n, n, n) CT slices, HU (enhanced, or the coarse CT upsampled)
    shape_source, material_source, enhancer_source : what produced each part
    """

    site: str
    grid: Grid
    coarse_grid: Grid
    energy_keV: float
    params: torch.Tensor
    vertices: torch.Tensor
    labels: torch.Tensor
    soft_labels: torch.Tensor | None
    material: torch.Tensor
    mu: torch.Tensor
    coarse_hu: torch.Tensor
    ct_hu: torch.Tensor
    shape_source: str
    material_source: str
    enhancer_source: str

    @property
    def batch_size(self) -> int:
        return len(self.params)

    def provenance(self) -> dict:
        """JSON-able record of where each part came from."""
        return {"site": self.site, "energy_keV": self.energy_keV,
                "shape_source": self.shape_source, "material_source": self.material_source,
                "enhancer_source": self.enhancer_source}


class Generator:
    """The chain for one site.

    Parameters
    ----------
    site : a :class:`~fedsim_app.sites.Site` or its key
    ssm : the shape model (default: the shipped atlas SSM)
    config : resolutions (:class:`ChainConfig`)
    grid : the label grid (default: ``config.label_size``³ over ``config.fov_mm`` about the
        SSM's mean heart); cubic and isotropic, ``config.coarse_size`` dividing its size
    g_shape : module z (B, 32) → params (B, 21) in [-1, 1], or None
    g_material : module (z (B, 32), labels: hard (B, n, n, n) or probabilities
        (B, 8, n, n, n)) → material (B, 1, 16, 16, 16) in [-1, 1], or None
    enhancer : module (coarse_up (N, 1, H, W), labels (N, H, W), k_frac (N,)) →
        (N, 1, H, W) in ``hu / 1000``, or None
    enhancer_checkpoint : where the enhancer came from (for the provenance line)
    device : torch device of every tensor (default: ``fedsim_app.device.default_device``);
        the modules must already live there
    """

    def __init__(self, site, *, ssm=None, config: ChainConfig | None = None,
                 grid: Grid | None = None, g_shape=None, g_material=None, enhancer=None,
                 enhancer_checkpoint=None, device=None):
        from fedsim_app.device import default_device
        from fedsim_app.sites import get_site

        self.site = get_site(site)
        self.config = ChainConfig() if config is None else config
        self.device = torch.device(device) if device is not None else default_device()
        self._ssm = ssm
        self._ssm_given = ssm is not None  # a given SSM frames the default grid
        self._grid = grid
        self.g_shape, self.g_material, self.enhancer = g_shape, g_material, enhancer
        self.enhancer_checkpoint = enhancer_checkpoint

    # -- fixed parts -----------------------------------------------------------------
    @property
    def ssm(self):
        if self._ssm is None:
            # a trained G_shape's parameters mean its own SSM and scale range
            self._ssm = generator_ssm(self.g_shape)
        return self._ssm

    @cached_property
    def grid(self) -> Grid:
        """The label grid."""
        if self._grid is None:
            if self._ssm_given:
                from fedsim_app.shape import default_grid

                return default_grid(self.ssm, self.config.label_size, self.config.fov_mm)
            return frame_grid(self.config.label_size, self.config.fov_mm)
        g = self._grid
        if len(set(g.shape)) != 1 or len(set(g.spacing_mm)) != 1:
            raise FedSimError(f"the chain needs a cubic, isotropic label grid; got shape "
                              f"{g.shape} spacing {g.spacing_mm} mm — resample the data first")
        if g.shape[0] % self.config.coarse_size:
            raise FedSimError(f"label grid size {g.shape[0]} is not a multiple of the coarse "
                              f"size {self.config.coarse_size}")
        return g

    @cached_property
    def coarse_grid(self) -> Grid:
        return coarse_grid_of(self.grid, self.config.coarse_size)

    @cached_property
    def scanner(self) -> CoarseScanner:
        """The site's coarse simulator over the coarse grid."""
        return CoarseScanner(self.site.scanner, self.config.coarse_size,
                             self.coarse_grid.spacing_mm[0], device=self.device)

    def attenuation_table(self, dtype=torch.float32) -> torch.Tensor:
        """(8,) μ per label at the site's effective energy (Fix-Mat)."""
        return _table(self.site.scanner, dtype, str(self.device))

    # -- stages ------------------------------------------------------------------------
    def shape_params(self, params=None, z=None) -> tuple[torch.Tensor, str]:
        """Parameters (B, 21): the given ones, or G_shape(z)."""
        if params is not None:
            return check_params_tensor(torch.as_tensor(params, device=self.device)), \
                EXPLICIT_PARAMS
        if self.g_shape is None:
            raise FedSimError("no shape parameters and no shape generator: pass params "
                              "(B, 21), or build the Generator with g_shape")
        if z is None:
            raise FedSimError("the shape generator needs a latent z (B, 32)")
        return self.g_shape(z), f"G_shape {type(self.g_shape).__name__}(z)"

    def labels(self, params: torch.Tensor, *, soft: bool = False):
        """``(vertices (B, V, 3), hard labels (B, n, n, n), soft (B, 8, n, n, n) or None)``."""
        vertices = decode(self.ssm, params)
        labels = hard_labels(self.ssm, vertices, self.grid)
        probs = soft_label_probs(self.ssm, params, self.grid, self.config.soft) if soft \
            else None
        return vertices, labels, probs

    def material(self, labels: torch.Tensor, z=None) -> tuple[torch.Tensor, str]:
        """Material map (B, 1, s, s, s) over ``labels`` (hard (B, n, n, n) or probabilities
        (B, 8, n, n, n)): G_material(z, labels), or Fix-Mat of the labels."""
        if self.g_material is not None:
            if z is None:
                raise FedSimError("the material generator needs a latent z (B, 32)")
            return (self.g_material(z, labels),
                    f"G_material {type(self.g_material).__name__}(z, labels)")
        dtype = labels.dtype if labels.is_floating_point() else torch.float32
        mu = fix_mat(labels, self.attenuation_table(dtype), self.config.coarse_size)
        return mu_to_material(mu, self.site.scanner), fix_mat_source(self.site.scanner)

    def mu(self, material: torch.Tensor) -> torch.Tensor:
        return material_to_mu(material, self.site.scanner)

    def coarse_ct(self, mu: torch.Tensor) -> torch.Tensor:
        return coarse_ct(mu, self.scanner)

    def enhance(self, coarse_hu: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, str]:
        ct = enhance(coarse_hu, labels, self.enhancer, chunk=self.config.slice_chunk,
                     precision=self.config.precision)
        source = enhancer_source(self.enhancer, self.enhancer_checkpoint)
        if self.enhancer is not None and self.config.precision != "float32":
            source += f" ({self.config.precision} convolutions)"
        return ct, source

    def __call__(self, params=None, *, z=None, soft: bool = False) -> ChainResult:
        """Run the chain on a batch.

        Parameters
        ----------
        params : (B, 21) or (21,) shape parameters; None to take them from G_shape(z)
        z : (B, 32) latents for the generators that are present
        soft : also compute soft labels and feed them (not the hard ones) to Fix-Mat, so
            gradients reach ``params`` through the material map and the coarse CT
        """
        if z is not None:
            z = torch.as_tensor(z, device=self.device)
        p, shape_source = self.shape_params(params, z)
        vertices, labels, probs = self.labels(p, soft=soft)
        material, material_source = self.material(probs if soft else labels, z)
        mu = self.mu(material)
        coarse_hu = self.coarse_ct(mu)
        ct_hu, ct_source = self.enhance(coarse_hu, labels)
        return ChainResult(
            site=self.site.key, grid=self.grid, coarse_grid=self.coarse_grid,
            energy_keV=self.site.effective_energy_keV, params=p, vertices=vertices,
            labels=labels, soft_labels=probs, material=material, mu=mu, coarse_hu=coarse_hu,
            ct_hu=ct_hu, shape_source=shape_source, material_source=material_source,
            enhancer_source=ct_source)

    def meshes(self, vertices) -> dict:
        """``{structure: (vertices, faces)}`` of one shape's vertices (V, 3)."""
        return meshes_of(self.ssm, vertices)


_TABLES: dict = {}


def _table(profile, dtype, device: str) -> torch.Tensor:
    key = (profile, dtype, device)
    if key not in _TABLES:
        _TABLES[key] = label_attenuation(profile, dtype=dtype, device=device)
    return _TABLES[key]


__all__ = [
    "EXPLICIT_PARAMS", "LATENT_DIM", "ChainConfig", "ChainResult", "CoarseScanner", "Generator",
    "coarse_ct", "coarse_grid_of", "coarse_target", "enhance", "enhancer_conditioning",
    "fix_mat", "label_attenuation", "label_neighbourhoods", "material_to_mu", "mu_to_material",
    "soft_label_probs", "upsample_coarse",
]
