"""Enhancement stage: the coarse CT and the labels → CT slices on the label grid.

A site enhancer (``fedsim_app.models.enhancer.SiteEnhancer``) turns each axial slice into
the site's appearance from a conditioning built here: for slice ``k`` of ``K``, the
coarse CT upsampled to the label grid (trilinear) and cut at ``k``, the label slice and
the fraction ``k / K``. Images travel in ``hu / 1000`` (water 0, air −1). Without an
enhancer the chain's CT is the upsampled coarse CT itself, and its provenance says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fedsim_app.errors import FedSimError

#: Image tensors given to and returned by an enhancer are ``hu / HU_SCALE``.
HU_SCALE = 1000.0
NO_ENHANCER = "no enhancer: the coarse CT upsampled (trilinear) to the label grid"


def upsample_coarse(coarse_hu: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Coarse CT (B, s, s, s) → (B, nz, ny, nx) by trilinear interpolation over the same
    field of view (``align_corners=False``: voxel centres of both grids line up)."""
    return F.interpolate(coarse_hu[:, None], size=tuple(shape), mode="trilinear",
                         align_corners=False)[:, 0]


def enhancer_conditioning(coarse_hu: torch.Tensor, labels: torch.Tensor,
                          slices=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Enhancer inputs of a batch of volumes, one row per axial slice.

    Parameters
    ----------
    coarse_hu : (B, s, s, s) coarse CT, HU
    labels : (B, K, H, W) int labels 0..7 on the label grid (K axial slices)
    slices : indices of the slices to condition (default: all K), same for every volume

    Returns
    -------
    coarse_up : (N, 1, H, W) float, the upsampled coarse CT slices in ``hu / 1000``
    label_slices : (N, H, W) int64
    k_frac : (N,) float, ``k / K`` of each slice
        with N = B · len(slices), volume-major (rows ``b·len(slices) + j``).
    """
    if labels.ndim != 4 or coarse_hu.ndim != 4 or len(labels) != len(coarse_hu):
        raise FedSimError("enhancer conditioning needs coarse CT (B, s, s, s) and labels "
                          f"(B, K, H, W); got {tuple(coarse_hu.shape)} and "
                          f"{tuple(labels.shape)}")
    b, k_total, h, w = labels.shape
    ks = torch.arange(k_total, device=labels.device) if slices is None else torch.as_tensor(
        slices, device=labels.device).long()
    up = upsample_coarse(coarse_hu, (k_total, h, w))[:, ks]  # (B, n_k, H, W)
    coarse_up = (up / HU_SCALE).reshape(-1, 1, h, w)  # (N, 1, H, W)
    label_slices = labels[:, ks].long().reshape(-1, h, w)  # (N, H, W)
    k_frac = (ks.to(coarse_up.dtype) / k_total).repeat(b)  # (N,)
    return coarse_up, label_slices, k_frac


def enhance(coarse_hu: torch.Tensor, labels: torch.Tensor, enhancer=None, *,
            chunk: int = 64) -> torch.Tensor:
    """CT (B, K, H, W) HU on the label grid: every axial slice through ``enhancer``
    (``chunk`` slices per call), or the upsampled coarse CT when ``enhancer`` is None."""
    if enhancer is None:
        return upsample_coarse(coarse_hu, tuple(labels.shape[1:]))
    b, k_total, h, w = labels.shape
    out = []
    for start in range(0, k_total, chunk):
        ks = torch.arange(start, min(start + chunk, k_total), device=labels.device)
        cond = enhancer_conditioning(coarse_hu, labels, ks)
        y = enhancer(*cond)  # (B·n_k, 1, H, W) in hu / 1000
        if y.shape != cond[0].shape:
            raise FedSimError(f"the enhancer returned {tuple(y.shape)} for "
                              f"{tuple(cond[0].shape)} slices; it must keep (N, 1, H, W)")
        out.append(y.reshape(b, len(ks), h, w))
    return torch.cat(out, 1) * HU_SCALE


def enhancer_source(enhancer, checkpoint=None) -> str:
    """Provenance line of the CT slices."""
    if enhancer is None:
        return NO_ENHANCER
    where = f" from {checkpoint}" if checkpoint else ""
    return f"site enhancer {type(enhancer).__name__}{where}"


__all__ = ["HU_SCALE", "NO_ENHANCER", "enhance", "enhancer_conditioning", "enhancer_source",
           "upsample_coarse"]
