"""Shape stage: 21 parameters → vertices → labels (hard for output, soft for gradients).

The SSM decode is :func:`fedsim_app.shape.torch_decode.decode_torch` (differentiable);
hard labels are the exact voxelization (:func:`fedsim_app.shape.voxelize`, no gradient);
soft labels are the soft occupancy of :mod:`fedsim_app.shape.soft` (gradients reach the
parameters).
"""

from __future__ import annotations

import numpy as np
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.io.grid import Grid
from fedsim_app.shape.params import N_PARAMS
from fedsim_app.shape.soft import SoftConfig, soft_labels, soft_occupancy

N_CLASSES = 8  # background + the seven structures (internal codes 0..7)


def check_params_tensor(params: torch.Tensor) -> torch.Tensor:
    """``params`` as (B, 21); a single (21,) vector becomes a batch of one."""
    if params.shape[-1] != N_PARAMS or params.ndim not in (1, 2):
        raise FedSimError(f"shape parameters must be (B, {N_PARAMS}) or ({N_PARAMS},), "
                          f"got {tuple(params.shape)}")
    return params.reshape(-1, N_PARAMS)


def ssm_for(ssm, log_scale: float = 0.0):
    """``ssm`` with its scale range ``exp(±log_scale)`` (0 or the same: ``ssm`` itself).

    A trained G_shape's output is decoded in the range it was trained in
    (``ShapeGenerator.log_scale``); everything else of the SSM stays as it is.
    """
    import dataclasses

    if not log_scale or log_scale == ssm.ranges.log_scale:
        return ssm
    return dataclasses.replace(ssm, ranges=dataclasses.replace(ssm.ranges,
                                                               log_scale=float(log_scale)))


def generator_ssm(g_shape=None):
    """The SSM a G_shape's output decodes in: its own (``g_shape.ssm``, set by training
    with an SSM from labels and saved beside its weights) or the shipped atlas SSM, with
    the network's scale range (``g_shape.log_scale``)."""
    base = getattr(g_shape, "ssm", None)
    if base is None:
        from fedsim_app.shape import load_atlas_ssm

        base = load_atlas_ssm()
    return ssm_for(base, getattr(g_shape, "log_scale", 0.0))


def frame_grid(size: int, fov_mm: float) -> Grid:
    """The model's label grid: ``size³`` over ``fov_mm`` about the atlas mean heart.

    Every chain shares this frame whatever SSM its G_shape decodes in (an SSM from labels
    is centred on the atlas template's centre too), so data read for training and
    volumes rendered later line up."""
    from fedsim_app.shape import default_grid, load_atlas_ssm

    return default_grid(load_atlas_ssm(), size, fov_mm)


def decode(ssm, params: torch.Tensor) -> torch.Tensor:
    """Vertices (B, V, 3) world mm of parameters (B, 21) in [-1, 1] (differentiable)."""
    return ssm.decode_torch(check_params_tensor(params))


def hard_labels(ssm, vertices: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Exact label volumes (B, nz, ny, nx) int64 (internal codes 0..7) on ``vertices``'
    device; no gradient (the voxelization is a parity count)."""
    from fedsim_app.shape.voxelize import voxelize

    verts = vertices.detach().cpu().numpy()  # (B, V, 3)
    out = np.stack([voxelize(ssm, v, grid) for v in verts])  # (B, nz, ny, nx) uint8
    return torch.from_numpy(out.astype(np.int64)).to(vertices.device)


def label_neighbourhoods(ssm, params: torch.Tensor, grid: Grid,
                         cfg: SoftConfig | None = None) -> list:
    """The soft occupancy's band voxels, nearest faces and blend weights of each shape
    (B, 21), from detached vertices: pass them to :func:`soft_label_probs` to reuse them
    over nearby parameters (optimisation steps, finite-difference checks)."""
    from fedsim_app.shape.soft import neighbourhood

    cfg = SoftConfig() if cfg is None else cfg
    verts = decode(ssm, params.detach()).cpu().numpy()  # (B, V, 3)
    return [neighbourhood(v, ssm.topology, grid, cfg) for v in verts]


def soft_label_probs(ssm, params: torch.Tensor, grid: Grid, cfg: SoftConfig | None = None,
                     neighbourhoods: list | None = None) -> torch.Tensor:
    """Differentiable label probabilities (B, 8, nz, ny, nx) of parameters (B, 21).

    Occupancy is exact away from the surfaces and smooth within ``cfg.band·cfg.tau_mm``
    of them, so gradients reach ``params`` through the decoded vertices. Each shape's
    nearest-face search runs on its detached vertices (CPU) unless ``neighbourhoods``
    (:func:`label_neighbourhoods`) are given; the tensors stay on ``params``' device.
    """
    cfg = SoftConfig() if cfg is None else cfg
    verts = decode(ssm, params)  # (B, V, 3)
    names = ssm.topology.names
    nbhds = [None] * len(verts) if neighbourhoods is None else neighbourhoods
    if len(nbhds) != len(verts):
        raise FedSimError(f"{len(nbhds)} neighbourhoods for {len(verts)} shapes")
    return torch.stack([soft_labels(soft_occupancy(v, ssm.topology, grid, cfg, nb), names)
                        for v, nb in zip(verts, nbhds, strict=True)])


def meshes_of(ssm, vertices) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{structure: (vertices (V_s, 3) world mm, faces (F_s, 3))}`` of one shape (V, 3)."""
    if isinstance(vertices, torch.Tensor):
        vertices = vertices.detach().cpu().numpy()
    vertices = np.asarray(vertices, float)
    return {name: ssm.topology.structure(vertices, name) for name in ssm.topology.names}


__all__ = ["N_CLASSES", "check_params_tensor", "decode", "hard_labels", "label_neighbourhoods",
           "meshes_of", "soft_label_probs"]
