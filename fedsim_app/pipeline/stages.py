"""The pipeline's stages as plain functions and per-site renderers.

shape → labels → scene (torso + heart) → material map (μ, Fix-Mat) → coarse CT and full CT.
Per-site objects hold what does not change while sliders move (transfer functions, the
noise texture, the coarse system matrix), so one render costs a few FFTs and one matmul.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import LABEL_OF, STRUCTURES

#: Scene codes: torso tissues keep their ``anatomy.Tissue`` codes, heart structures get
#: HEART_BASE + internal label (the cohort's convention).
HEART_BASE = 20
FIX_MAT = "atlas material (Fix-Mat): fixed attenuation per tissue class at {energy:.1f} keV"
SIMULATOR_CT = "simulator full-resolution render (no enhancer trained yet)"


def meshes_of(ssm, vertices: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{structure: (vertices (V, 3) world xyz mm, faces (F, 3))}`` of decoded vertices."""
    return {name: ssm.topology.structure(vertices, name) for name in ssm.topology.names}


def torso_params(preset, grid: Grid, seed: int):
    """The torso drawn with ``seed`` about the grid's centre (the mean heart's)."""
    from fedsim_app.anatomy import sample_torso_params

    centre = tuple(float(c) for c in grid.index_to_world(np.array(grid.shape) / 2 - 0.5))
    return sample_torso_params(np.random.default_rng(seed), preset.age_years,
                               heart_center_mm=centre)


def build_scene(labels: np.ndarray, torso, grid: Grid) -> np.ndarray:
    """Scene classes (nz, ny, nx) uint8: torso tissues, HEART_BASE + heart label."""
    from fedsim_app.anatomy import build_torso_labels

    tissue = build_torso_labels(torso, grid, labels > 0)
    return np.where(labels > 0, HEART_BASE + labels, tissue).astype(np.uint8)


def scene_material_names() -> dict[int, str]:
    """Scene class → material name (``ctsim.TISSUE_MATERIAL``)."""
    from fedsim_app.anatomy import Tissue
    from fedsim_app.ctsim import TISSUE_MATERIAL

    table = {int(t): TISSUE_MATERIAL[t.name.lower()] for t in Tissue}
    table.update({HEART_BASE + LABEL_OF[n]: TISSUE_MATERIAL[n] for n in STRUCTURES})
    return table


def atlas_material_lut(profile) -> np.ndarray:
    """(256,) float32 μ (1/mm) per scene class at the profile's effective energy.

    Fix-Mat: one fixed attenuation per class; contrast-enhanced blood carries the
    profile's iodine concentration.
    """
    from fedsim_app.ctsim import mu_per_mm

    lut = np.zeros(256, np.float32)
    for code, name in scene_material_names().items():
        iodine = profile.iodine_mg_per_ml if name == "blood_iodine" else 0.0
        lut[code] = mu_per_mm(name, profile.effective_energy_keV, iodine_mg_per_ml=iodine)
    return lut


def block_mean(volume: np.ndarray, block: int) -> np.ndarray:
    """Mean over ``block``³ cells: (n, n, n) → (n/b, n/b, n/b) float32."""
    n = volume.shape
    v = volume.reshape(n[0] // block, block, n[1] // block, block, n[2] // block, block)
    return v.mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)


class FullRenderer:
    """``ctsim.render_fast`` for one site, grid and noise seed, with its fixed parts kept.

    The MTF, the noise texture (white noise of ``seed`` shaped by the NPS, unit σ) and the
    noise level's geometry factor are computed once; a render is then two FFTs. The noise
    σ scales as exp(p/2) with the central path p (``ctsim.render.noise_sigma_hu``), so it
    is kept for p = 0 and rescaled. Equal to ``render_fast`` with a generator seeded
    ``seed`` (tests/pipeline/test_model.py).
    """

    def __init__(self, profile, grid: Grid, seed: int, *, noise: bool = True):
        self.profile, self.grid, self.seed, self.noise = profile, grid, int(seed), noise

    @cached_property
    def _operator(self):
        from fedsim_app.ctsim import CTOperator

        return CTOperator.from_profile(self.profile, volume_shape=self.grid.shape,
                                       spacing_mm=tuple(self.grid.spacing_mm), device="cpu")

    @cached_property
    def _transfer(self) -> tuple[np.ndarray, np.ndarray]:
        from fedsim_app.ctsim.render import transfer_functions

        return transfer_functions(self.profile, self._operator, self.grid.shape,
                                  tuple(self.grid.spacing_mm))

    @cached_property
    def _mtf32(self) -> np.ndarray:
        return self._transfer[0].astype(np.float32)

    @cached_property
    def _texture(self) -> np.ndarray:
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        white = torch.randn(self.grid.shape, generator=gen, dtype=torch.float64).numpy()
        shape = self.grid.shape
        field = np.fft.irfftn(np.fft.rfftn(white) * self._transfer[1], s=shape, axes=(0, 1, 2))
        return (field / max(field.std(), 1e-12)).astype(np.float32)

    @cached_property
    def _sigma_at_zero_path(self) -> float:
        from fedsim_app.ctsim.render import noise_sigma_hu

        return noise_sigma_hu(self.profile, self._operator, 0.0)

    def __call__(self, mu: np.ndarray) -> np.ndarray:
        """HU (nz, ny, nx) float32 of μ (1/mm) on the renderer's grid."""
        from scipy import fft

        from fedsim_app.ctsim import mu_to_hu
        from fedsim_app.ctsim.render import central_path_length

        # float32 FFTs (scipy keeps single precision): half the cost of render_fast's
        # float64 ones, and HU agree to far below the noise
        mu = np.asarray(mu, np.float32)
        blurred = fft.irfftn(fft.rfftn(mu) * self._mtf32, s=mu.shape, axes=(0, 1, 2))
        hu = mu_to_hu(blurred, self.profile)
        if self.noise:
            path = central_path_length(mu, tuple(self.grid.spacing_mm))
            hu = hu + self._texture * np.float32(self._sigma_at_zero_path * np.exp(path / 2))
        return hu.astype(np.float32)


class CoarseRenderer:
    """The site's coarse simulator (``ctsim.CoarseCT``): 16³ μ → 16³ HU, noise-free.

    With the site's system matrix cached (built once per scanner, minutes on a CPU) a
    render is one matmul; before that, diffct's direct path runs (about a second).
    """

    def __init__(self, profile, size: int, spacing_mm: float):
        from fedsim_app.ctsim import CoarseCT

        # the coarse map covers the label grid's field of view, not the scanner's
        self.ct = CoarseCT(profile, size=size, spacing_mm=spacing_mm)

    @property
    def matrix_ready(self) -> bool:
        """Whether the fast (matrix) path is available without building it."""
        return self.ct.matrix_cached

    def build(self) -> None:
        """Build (or load) the system matrix now: minutes the first time for a scanner,
        then cached on disk by ``ctsim``."""
        _ = self.ct.matrix

    @cached_property
    def _matrix(self) -> np.ndarray:
        return self.ct.matrix.detach().cpu().numpy()  # shares the tensor's memory

    def __call__(self, mu_coarse: np.ndarray) -> np.ndarray:
        import torch

        from fedsim_app.ctsim import mu_to_hu, simulate

        mu = np.ascontiguousarray(mu_coarse, np.float32)
        if self.matrix_ready:
            # CoarseCT.render is this matmul; numpy's matrix-vector product from a worker
            # thread avoids torch's thread pool, which under a busy GUI (software OpenGL
            # on 2 cores) took ten times longer
            return mu_to_hu(self._matrix @ mu.ravel(), self.ct.profile).reshape(mu.shape)
        with torch.no_grad():
            hu = simulate(torch.from_numpy(mu), self.ct.profile, operator=self.ct.operator,
                          noise=False)
        return hu.cpu().numpy().astype(np.float32)
