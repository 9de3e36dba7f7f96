"""Coarse CT stage: μ (B, 16, 16, 16) → HU (B, 16, 16, 16) through the site's scanner.

The scan is :class:`fedsim_app.ctsim.CoarseCT` (diffct project → FDK, noise-free),
which is linear in μ: once the scanner's system matrix is built (minutes, once per
scanner and grid, then cached on disk) a batch is one matrix product; before that,
diffct's direct path runs (about a second on a CPU). Both are differentiable.
"""

from __future__ import annotations

from functools import cached_property

import torch
import torch.nn.functional as F

from fedsim_app.errors import FedSimError


class CoarseScanner:
    """A site's coarse simulator on a coarse grid of ``size``³ voxels of ``spacing_mm``.

    Parameters
    ----------
    profile : the site's :class:`~fedsim_app.ctsim.ScannerProfile`
    size, spacing_mm : the coarse grid (it covers the label grid's field of view)
    device : torch device of the operator and matrix
    precision, n_views, use_cache : passed to :class:`~fedsim_app.ctsim.CoarseCT`
        (tests use float64, few views and no cache)
    """

    def __init__(self, profile, size: int, spacing_mm: float, *, device=None,
                 precision: str = "float32", n_views: int | None = None,
                 use_cache: bool = True):
        from fedsim_app.ctsim import CoarseCT

        self.profile = profile
        self.ct = CoarseCT(profile, size=size, spacing_mm=spacing_mm, device=device,
                           precision=precision, n_views=n_views, use_cache=use_cache)

    def __repr__(self) -> str:
        return f"CoarseScanner({self.ct!r})"

    @property
    def matrix_ready(self) -> bool:
        """Whether the fast (matrix) path is available without building it."""
        return self.ct.matrix_cached

    def build(self) -> None:
        """Build (or load) the system matrix now (minutes the first time for a scanner)."""
        _ = self.ct.matrix

    @cached_property
    def _direct_operator(self):
        return self.ct.operator

    def __call__(self, mu: torch.Tensor) -> torch.Tensor:
        """HU (B, s, s, s) of μ (B, s, s, s) 1/mm; differentiable in μ."""
        s = self.ct.size
        if mu.shape[-3:] != (s, s, s):
            raise FedSimError(f"the coarse scanner images {s}³ volumes, got "
                              f"{tuple(mu.shape[-3:])}")
        if self.matrix_ready:
            return self.ct.render(mu).to(mu.dtype)
        from fedsim_app.ctsim import simulate

        op = self._direct_operator
        return simulate(mu.to(op.dtype), self.profile, operator=op, noise=False).to(mu.dtype)


def coarse_ct(mu: torch.Tensor, scanner: CoarseScanner) -> torch.Tensor:
    """Coarse CT (B, s, s, s) HU of μ (B, s, s, s) through ``scanner`` (differentiable)."""
    return scanner(mu)


def coarse_target(volume_hu, size: int = 16, *, mode: str = "trilinear") -> torch.Tensor:
    """A real CT reduced to the coarse grid: (B, n, n, n) or (n, n, n) HU → (B, s, s, s).

    ``trilinear`` samples the volume at the coarse voxel centres (linear interpolation,
    ``align_corners=False``, so the coarse grid covers the same field of view);
    ``area`` takes block means instead (less noise; needs ``size`` to divide ``n``).
    A numpy array is accepted and returned as a float32 tensor.
    """
    v = torch.as_tensor(volume_hu)
    if not v.is_floating_point():
        v = v.float()
    if v.ndim == 3:
        v = v[None]
    if v.ndim != 4:
        raise FedSimError(f"a CT volume is (B, n, n, n) or (n, n, n), got {tuple(v.shape)}")
    if mode == "trilinear":
        return F.interpolate(v[:, None], size=(size,) * 3, mode="trilinear",
                             align_corners=False)[:, 0]
    if mode == "area":
        from fedsim_app.models.material import block_mean

        return block_mean(v, size)
    raise FedSimError(f"coarse_target mode must be 'trilinear' or 'area', not {mode!r}")


__all__ = ["CoarseScanner", "coarse_ct", "coarse_target"]
