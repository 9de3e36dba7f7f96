"""GLO latent codes: one learnt z per training volume, and the normal fitted to them."""

from __future__ import annotations

import torch
from torch import nn


class Latents(nn.Module):
    """``n`` latent codes of ``dim`` values, initialised N(0, I) from ``seed``.

    ``codes[i]`` belongs to training volume ``i`` (labelled volumes first).
    """

    def __init__(self, n: int, dim: int = 32, *, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        self.codes = nn.Parameter(torch.randn(n, dim, generator=g))

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.codes[index]


def fit_normal(codes: torch.Tensor, shrink: float = 0.1
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of codes (N, D).

    With fewer codes than dimensions (4 labelled volumes, 32 dimensions) the sample
    covariance is singular; it is shrunk towards its diagonal,
    ``(1 - shrink)·S + shrink·diag(S)``, plus 1e-6·I, so it can be sampled.
    """
    codes = codes.detach().double()
    mean = codes.mean(0)
    centred = codes - mean
    cov = centred.T @ centred / max(len(codes) - 1, 1)
    cov = (1 - shrink) * cov + shrink * torch.diag(torch.diag(cov))
    cov = cov + 1e-6 * torch.eye(len(mean), dtype=cov.dtype)
    return mean.float(), cov.float()


def sample_normal(mean: torch.Tensor, cov: torch.Tensor, n: int, *, seed: int
                  ) -> torch.Tensor:
    """``n`` draws (n, D) of N(mean, cov), deterministic in ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    chol = torch.linalg.cholesky(cov.double())
    eps = torch.randn(n, len(mean), generator=g, dtype=torch.float64)
    return (mean.double() + eps @ chol.T).float()


def latent_prior(codes: torch.Tensor) -> dict:
    """The latents' prior ``{"mean", "cov"}``: :func:`fit_normal` of ``codes`` (N, D),
    kept on the CPU (phase 3 fits it to the labelled latents)."""
    mean, cov = fit_normal(codes.detach().cpu())
    return {"mean": mean, "cov": cov}
