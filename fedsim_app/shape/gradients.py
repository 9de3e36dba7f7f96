"""Gradients of a loss on the voxelized shape with respect to the 21 parameters.

Two estimators:

* :func:`fd_gradient` — the paper's central finite differences: the 42 perturbed shapes
  are decoded in one batch and voxelized by one shared rasterisation pass (in chunks),
  then the loss is evaluated on the hard label volumes.
* :func:`soft_gradient` — autograd through the soft occupancy of
  :mod:`fedsim_app.shape.soft` on a (coarse) grid: one forward and one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fedsim_app.io.grid import Grid
from fedsim_app.shape.params import N_PARAMS, check_params
from fedsim_app.shape.soft import SoftConfig, soft_labels, soft_occupancy, torch_threads
from fedsim_app.shape.voxelize import precedence_lut, structure_flags


def voxelize_batch(model, params: np.ndarray, grid: Grid, chunk: int = 8) -> np.ndarray:
    """Label volumes (B, nz, ny, nx) uint8 of parameter sets (B, 21), shared passes."""
    p = check_params(np.atleast_2d(params))
    lut = precedence_lut(model.topology.names)
    bits = model.topology.face_bits()
    out = np.empty((len(p), *grid.shape), np.uint8)
    for s in range(0, len(p), chunk):
        verts = model.decode(p[s : s + chunk])  # (b, V, 3)
        out[s : s + chunk] = lut[structure_flags(verts, model.topology.faces, bits, grid)]
    return out


def fd_gradient(
    model,
    params,
    loss_fn: Callable[[np.ndarray], np.ndarray],
    grid: Grid,
    eps: float = 0.05,
    chunk: int = 8,
) -> tuple[float, np.ndarray]:
    """Central finite-difference gradient of ``loss_fn(voxelize(decode(params)))``.

    Parameters
    ----------
    params : (21,) in [-1, 1]
    loss_fn : label volumes (B, nz, ny, nx) uint8 → losses (B,)
    eps : step in normalised units (shrunk one-sidedly at the ±1 bounds)

    Returns
    -------
    loss : float at ``params``; grad : (21,)
    """
    p = check_params(params)
    hi = np.minimum(p + eps, 1.0)
    lo = np.maximum(p - eps, -1.0)
    batch = np.repeat(p[None], 2 * N_PARAMS + 1, axis=0)
    idx = np.arange(N_PARAMS)
    batch[1 + idx, idx] = hi
    batch[1 + N_PARAMS + idx, idx] = lo
    losses = np.asarray(loss_fn(voxelize_batch(model, batch, grid, chunk)), float)
    grad = (losses[1 : 1 + N_PARAMS] - losses[1 + N_PARAMS :]) / (hi - lo)
    return float(losses[0]), grad


def soft_gradient(
    model,
    params,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    grid: Grid,
    cfg: SoftConfig | None = None,
    dtype=torch.float32,
    threads: int = 1,
) -> tuple[float, np.ndarray]:
    """Autograd gradient of ``loss_fn(soft label probabilities)`` (8, nz, ny, nx).

    Returns ``(loss, grad (21,))``. The same ``loss_fn`` written on one-hot hard labels
    gives the finite-difference counterpart. ``threads``: torch threads meanwhile (0
    leaves torch's setting; see :func:`~fedsim_app.shape.soft.torch_threads`).
    """
    cfg = SoftConfig() if cfg is None else cfg
    with torch_threads(threads):
        p = torch.tensor(check_params(params), dtype=dtype, requires_grad=True)
        verts = model.decode_torch(p)
        occ = soft_occupancy(verts, model.topology, grid, cfg)
        loss = loss_fn(soft_labels(occ, model.topology.names))
        loss.backward()
    return float(loss.detach()), p.grad.numpy().copy()


def soft_label_volumes(
    model, params: torch.Tensor, grid: Grid, cfg: SoftConfig | None = None
) -> torch.Tensor:
    """Differentiable label probabilities (B, 8, nz, ny, nx) of parameters (B, 21).

    For a network that outputs shape parameters (e.g. a tanh head): gradients reach
    ``params`` through the soft occupancy. Each shape's nearest-face search runs on its
    detached vertices.
    """
    cfg = SoftConfig() if cfg is None else cfg
    verts = model.decode_torch(params.reshape(-1, params.shape[-1]))  # (B, V, 3)
    return torch.stack([
        soft_labels(soft_occupancy(v, model.topology, grid, cfg), model.topology.names)
        for v in verts
    ])


def cosine(a, b) -> float:
    """Cosine similarity of two vectors."""
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))
