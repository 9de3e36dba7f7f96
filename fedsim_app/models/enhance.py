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


def structure_levels_of(coarse_hu: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each heart structure's level in coarse volumes (B, s, s, s) HU: (B, 8) hu/1000,
    column 0 (the background) 0, detached.

    A structure's level is the coarse CT's mean over the coarse voxels labelled with it
    (:func:`~fedsim_app.models.material.coarse_labels`: the label nearest sampling picks
    in each voxel's block, as the material figure and the structure-mean term count); a
    structure no coarse voxel takes (a child's small vessel) is weighed by the share of
    each voxel it fills. ``labels``: (B, n, n, n) int on the label grid, or
    (B, 8, n, n, n) probabilities (their most likely label); n a multiple of s. 0 where
    a structure is absent.

    Measured offline (docs/benchmarks.md, 2026-12-05 03:13): weighing by the share of
    the voxels a structure fills more than half of instead left a child's pulmonary
    artery's gap to its real level varying 105-119 HU (SD over volumes) at B, against
    22-37 HU with these voxels.
    """
    from fedsim_app.models.losses import structure_levels
    from fedsim_app.models.material import coarse_label_masks, label_fractions

    with torch.no_grad():
        hard = labels.argmax(1) if labels.is_floating_point() else labels
        size = coarse_hu.shape[-1]
        masks = coarse_label_masks(hard, size, coarse_hu.dtype)
        taken = masks.sum((2, 3, 4), keepdim=True) > 0
        weights = torch.where(taken, masks, label_fractions(hard, size, coarse_hu.dtype))
        heart = structure_levels(coarse_hu / HU_SCALE, weights)  # (B, 7)
        return torch.cat([torch.zeros_like(heart[:, :1]), heart], 1)


def level_inputs(enhancer, coarse_hu: torch.Tensor, labels: torch.Tensor,
                 rows_per_volume: int) -> dict:
    """``{"levels": (B·rows_per_volume, 8)}`` for an enhancer that takes structure levels
    (``levels="coarse"``), each volume's row repeated for its slices (volume-major, as
    :func:`enhancer_conditioning` orders them); ``{}`` for any other."""
    if not getattr(enhancer, "uses_levels", False):
        return {}
    return {"levels": structure_levels_of(coarse_hu, labels).repeat_interleave(
        rows_per_volume, 0)}


def enhance(coarse_hu: torch.Tensor, labels: torch.Tensor, enhancer=None, *,
            chunk: int = 0, precision: str = "float32",
            noise: torch.Tensor | None = None) -> torch.Tensor:
    """CT (B, K, H, W) HU on the label grid: every axial slice through ``enhancer``, or
    the upsampled coarse CT when ``enhancer`` is None.

    The coarse CT is upsampled once; an enhancer that takes ``noise`` gets its texture
    noise drawn here, one (B, K, 1, H, W) draw from torch's global generator, so the
    result does not depend on how the slices are grouped into calls. Without gradients a
    SPADE site enhancer runs through its fused inference plan
    (:mod:`fedsim_app.models.enhance_infer`; the same function, tested against the
    module's forward); with gradients, through its own forward.

    Parameters
    ----------
    chunk : slices per volume and enhancer call; 0 sizes the calls for the CPU's cache
        (:func:`slices_per_call`)
    precision : ``"float32"``, or ``"bfloat16"`` for the inference plan's convolutions
        (not bit-equal: within the tolerance its tests state)
    noise : the texture draw (B, K, 1, H, W) instead of torch's global generator's, for an
        enhancer that takes ``noise`` (``benchmarks/enhancer_noise.py`` feeds it zeros,
        scaled or z-correlated draws)
    """
    if enhancer is None:
        return upsample_coarse(coarse_hu, tuple(labels.shape[1:]))
    if labels.ndim != 4 or coarse_hu.ndim != 4 or len(labels) != len(coarse_hu):
        raise FedSimError("the enhancer needs coarse CT (B, s, s, s) and labels (B, K, H, W); "
                          f"got {tuple(coarse_hu.shape)} and {tuple(labels.shape)}")
    from fedsim_app.models.enhance_infer import PRECISIONS, plan_enhancer

    if precision not in PRECISIONS:
        raise FedSimError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    b, k_total, h, w = labels.shape
    up = upsample_coarse(coarse_hu, (k_total, h, w)) / HU_SCALE  # (B, K, H, W)
    if noise is not None:
        if not takes_noise(enhancer):
            raise FedSimError("this enhancer draws no texture noise; do not pass noise")
        if tuple(noise.shape) != (b, k_total, 1, h, w):
            raise FedSimError(f"noise must be {(b, k_total, 1, h, w)} (B, K, 1, H, W) for "
                              f"these labels; got {tuple(noise.shape)}")
        noise = noise.to(up)
    elif takes_noise(enhancer):
        noise = torch.randn((b, k_total, 1, h, w), dtype=up.dtype, device=up.device)
    plan = None if torch.is_grad_enabled() else plan_enhancer(
        enhancer, dtype=PRECISIONS[precision], channels_last=up.device.type == "cpu")
    run = enhancer if plan is None else plan
    if plan is None and precision != "float32":
        raise FedSimError(f"precision {precision!r} needs the inference plan: run without "
                          "gradients and with a SPADE site enhancer")
    step = chunk if chunk > 0 else slices_per_call(enhancer, b, h, w)
    levels = structure_levels_of(coarse_hu, labels) \
        if getattr(enhancer, "uses_levels", False) else None  # (B, 8)

    def call(start: int) -> torch.Tensor:
        ks = slice(start, min(start + step, k_total))
        n_k = ks.stop - ks.start
        coarse_up = up[:, ks].reshape(-1, 1, h, w)  # (B·n_k, 1, H, W), volume-major
        lab = labels[:, ks].long().reshape(-1, h, w)  # (B·n_k, H, W)
        k_frac = (torch.arange(ks.start, ks.stop, device=up.device, dtype=up.dtype)
                  / k_total).repeat(b)  # (B·n_k,)
        kw = {} if noise is None else {"noise": noise[:, ks].reshape(-1, 1, h, w)}
        if levels is not None:
            kw["levels"] = levels.repeat_interleave(n_k, 0)
        y = run(coarse_up, lab, k_frac, **kw)  # (B·n_k, 1, H, W) in hu / 1000
        if y.shape != coarse_up.shape:
            raise FedSimError(f"the enhancer returned {tuple(y.shape)} for "
                              f"{tuple(coarse_up.shape)} slices; it must keep (N, 1, H, W)")
        return y.reshape(b, n_k, h, w)

    starts = range(0, k_total, step)
    workers = min(torch.get_num_threads(), len(starts))
    if plan is None or up.device.type != "cpu" or workers < 2:
        return torch.cat([call(s) for s in starts], 1) * HU_SCALE
    # torch's threads become workers over the slice groups, each running its group on one
    # thread: no barrier after every operation, so a busy CPU (another process taking a
    # core for a while) slows one group instead of stalling every operation. Groups
    # are independent (noise drawn above), so the result is the same as in series.
    from concurrent.futures import ThreadPoolExecutor

    from fedsim_app.shape.soft import torch_threads

    with torch_threads(1), ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(call, starts)), 1) * HU_SCALE


#: Bytes the largest activation of one enhancer call may take: below glibc's largest
#: mmap threshold (32 MiB), so with :func:`fedsim_app.device.keep_freed_memory` every
#: buffer is reused from the heap instead of mapped and faulted in again.
CALL_BYTES = 24 * 2**20


def slices_per_call(enhancer, batch: int, h: int, w: int) -> int:
    """Slices per volume per enhancer call so that the largest activation (the SPADE
    modulation maps, 4·width channels of H×W float32 per slice) stays within
    :data:`CALL_BYTES`; at least 1."""
    width = getattr(getattr(enhancer, "head", None), "out_channels", 64)
    per_slice = 4 * width * h * w * 4
    return max(1, CALL_BYTES // (per_slice * max(1, batch)))


def takes_noise(enhancer) -> bool:
    """Whether ``enhancer`` accepts a ``noise`` keyword (its texture draw)."""
    import inspect

    fn = enhancer.forward if isinstance(enhancer, torch.nn.Module) else enhancer
    try:
        return "noise" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def enhancer_source(enhancer, checkpoint=None) -> str:
    """Provenance line of the CT slices."""
    if enhancer is None:
        return NO_ENHANCER
    where = f" from {checkpoint}" if checkpoint else ""
    return f"site enhancer {type(enhancer).__name__}{where}"


__all__ = ["CALL_BYTES", "HU_SCALE", "NO_ENHANCER", "enhance", "enhancer_conditioning",
           "enhancer_source", "level_inputs", "slices_per_call", "structure_levels_of",
           "takes_noise", "upsample_coarse"]
