"""Fit the 21 shape parameters to a label map (any canonical grid, internal codes).

1. Downsample: the label map becomes per-class fractions on a coarse isotropic grid
   around the heart (several nearest-neighbour samples per coarse cell).
2. Rigid initialisation: Umeyama similarity from the mean shape's structure centroids to
   the label map's; what lies beyond the parameter ranges goes into ``offset_mm`` (the
   scan's own frame, e.g. a scanner origin far from the heart).
3. Optimisation: Adam on ``u`` with ``params = tanh(u)``, minimising ``1 - mean soft
   Dice`` of the soft labels (:mod:`fedsim_app.shape.soft`) on the coarse grid.
4. Report: the exact voxelizer on the input grid gives per-structure Dice and the
   binary-heart IoU, and ``params_at_limit`` counts parameters at ``|p| ≥ 0.99``.

Range: the fit uses the sampling range (the paper's ±1.5√λ per mode, ±15° rotations,
±20 mm, ±28 % scale), so a fitted vector is always a valid sampler/Explorer input. A heart
outside that range shows as parameters at their limit and a low Dice; the range it needs
comes from :mod:`fedsim_app.shape.register` (scaling to the mean's size, then an unbounded,
regularised refinement of every structure), not from a wider fit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import NAME_OF, STRUCTURES
from fedsim_app.shape.params import (
    N_PARAMS,
    euler_to_matrix,
    matrix_to_euler,
)
from fedsim_app.shape.procrustes import umeyama
from fedsim_app.shape.soft import (
    SoftConfig,
    neighbourhood,
    soft_labels,
    soft_occupancy_active,
    torch_threads,
)
from fedsim_app.shape.voxelize import precedence_lut, voxelize

N_CLASSES = len(STRUCTURES) + 1
LIMIT_AT = 0.99  # |param| from which a fitted parameter counts as sitting at its limit


@dataclass(frozen=True)
class FitConfig:
    """Fitting settings.

    Parameters
    ----------
    coarse_size : voxels per axis of the optimisation grid
    margin_mm : room around the heart's bounding box on the coarse grid
    steps : Adam steps
    lr : Adam learning rate on ``u`` (``params = tanh(u)``)
    refresh_every : recompute the nearest faces every this many steps
    samples_per_axis : nearest-neighbour samples per coarse cell and axis
    tau_factor : soft occupancy temperature in coarse voxels (1/4 makes the sigmoid's
        slope at the surface match a voxel's partial-volume fraction)
    threads : torch threads during the optimisation (0: leave torch's setting)
    """

    coarse_size: int = 48
    margin_mm: float = 25.0
    steps: int = 80
    lr: float = 0.05
    refresh_every: int = 5
    samples_per_axis: int = 3
    tau_factor: float = 0.25
    threads: int = 1

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_labels` found."""

    params: np.ndarray  # (21,) in [-1, 1]
    offset_mm: np.ndarray  # (3,) world shift added after the 21-parameter shape
    vertices: np.ndarray  # (V, 3) fitted vertices, world mm
    labels: np.ndarray  # (nz, ny, nx) uint8 exact voxelization on the input grid
    dice: dict = field(default_factory=dict)  # structure name → Dice (present ones)
    binary_iou: float = 0.0
    seconds: float = 0.0
    loss_history: tuple = ()

    def to_dict(self) -> dict:
        """JSON-able summary (no arrays but the 21 parameters and the offset)."""
        return {
            "binary_iou": float(self.binary_iou),
            "dice": {k: float(v) for k, v in self.dice.items()},
            "mean_dice": float(np.mean(list(self.dice.values()))) if self.dice else 0.0,
            # a parameter at its limit: the heart lies outside what the model expresses
            "params_at_limit": int((np.abs(self.params) >= LIMIT_AT).sum()),
            "params": [float(x) for x in self.params],
            "offset_mm": [float(x) for x in self.offset_mm],
            "seconds": float(self.seconds),
        }


def fit_labels(model, labels: np.ndarray, grid: Grid, cfg: FitConfig = FitConfig()) -> FitResult:
    """Estimate the 21 parameters (and a frame offset) that best explain a label map.

    Parameters
    ----------
    model : the :class:`~fedsim_app.shape.model.ShapeModel`
    labels : (nz, ny, nx) internal codes 0..7 on ``grid``
    grid : the label map's canonical grid (any spacing)
    """
    t0 = time.perf_counter()
    labels = np.asarray(labels)
    if labels.shape != grid.shape:
        raise ValueError(f"labels {labels.shape} do not match grid {grid.shape}")
    coarse = coarse_grid(labels, grid, cfg)
    target = coarse_fractions(labels, grid, coarse, cfg.samples_per_axis)  # (8, n, n, n)
    p0, offset = rigid_init(model, target, coarse)
    with torch_threads(cfg.threads):
        params, history = optimise(model, target, coarse, p0, offset, cfg)
    verts = model.decode(params) + offset
    fitted = voxelize(model, verts, grid)
    dice, iou = overlap_scores(fitted, labels)
    return FitResult(params, offset, verts, fitted, dice, iou, time.perf_counter() - t0,
                     tuple(history))


def coarse_grid(labels: np.ndarray, grid: Grid, cfg: FitConfig) -> Grid:
    """An isotropic ``coarse_size³`` grid over the heart's bounding box plus a margin."""
    fg = labels > 0
    if not fg.any():
        raise FedSimError("the label map holds background only: nothing to fit")
    lo, hi = [], []
    for axis in range(3):  # z, y, x
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(fg.any(axis=other))
        lo.append(hit[0])
        hi.append(hit[-1])
    w_lo = grid.index_to_world(np.array(lo, float))
    w_hi = grid.index_to_world(np.array(hi, float))
    centre = (w_lo + w_hi) / 2
    extent = float(np.max(w_hi - w_lo)) + 2 * cfg.margin_mm
    return Grid.centered(cfg.coarse_size, extent / cfg.coarse_size, tuple(centre))


def coarse_fractions(labels: np.ndarray, grid: Grid, coarse: Grid, samples: int = 2) -> np.ndarray:
    """Per-class fraction (8, nz, ny, nx) float32 of each coarse cell (nearest samples)."""
    from fedsim_app.shape.soft import grid_points

    pts = grid_points(coarse)  # (N, 3)
    off = (np.arange(samples) + 0.5) / samples - 0.5
    sub = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
    sub = sub * coarse.spacing_xyz  # offsets in mm (x, y, z)
    counts = np.zeros((len(pts), N_CLASSES), np.float32)
    shape = np.array(grid.shape)
    for d in sub:
        idx = np.rint(grid.world_to_index(pts + d)).astype(np.int64)  # (N, 3) z, y, x
        ok = np.all((idx >= 0) & (idx < shape), axis=1)
        lab = np.zeros(len(pts), np.int64)
        lab[ok] = labels[tuple(idx[ok].T)]
        counts[np.arange(len(pts)), np.clip(lab, 0, N_CLASSES - 1)] += 1
    return (counts / len(sub)).T.reshape(N_CLASSES, *coarse.shape)


def class_centroids(fractions: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (8, 3) world mm and volumes (8,) mm³ of each class's fraction map."""
    from fedsim_app.shape.soft import grid_points

    pts = grid_points(grid)
    f = fractions.reshape(N_CLASSES, -1).astype(float)
    mass = f.sum(1)
    cent = (f @ pts) / np.maximum(mass, 1e-12)[:, None]
    return cent, mass * float(np.prod(grid.spacing_mm))


def rigid_init(model, target: np.ndarray, coarse: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (21,) and offset (3,) from a centroid-based similarity fit."""
    mean_v = model.decode(np.zeros(N_PARAMS))
    lo, hi = mean_v.min(0) - 5.0, mean_v.max(0) + 5.0  # the whole mean heart, (x, y, z)
    step = float(min(coarse.spacing_mm))
    size = tuple(int(n) for n in np.ceil((hi - lo) / step)[::-1] + 1)  # (z, y, x)
    mean_grid = Grid.centered(size, step, tuple((lo + hi) / 2))
    mean_lab = voxelize(model, mean_v, mean_grid)
    onehot = (mean_lab[None] == np.arange(N_CLASSES)[:, None, None, None]).astype(np.float32)
    src, src_vol = class_centroids(onehot, mean_grid)
    dst, dst_vol = class_centroids(target, coarse)
    present = [c for c in range(1, N_CLASSES) if dst_vol[c] > 0 and src_vol[c] > 0]
    r = model.ranges
    c = np.asarray(model.center_mm, float)
    p = np.zeros(N_PARAMS)
    if len(present) >= 3:
        s, rot, _ = umeyama(src[present], dst[present], weights=np.sqrt(dst_vol[present]))
        ang = np.clip(matrix_to_euler(rot) / r.rotation_rad, -1, 1)
        p[14:17] = ang
        p[20] = np.clip(math.log(s) / r.log_scale, -1, 1)
    rot = euler_to_matrix(p[14:17] * r.rotation_rad)
    s = math.exp(p[20] * r.log_scale)
    # the centroid of the structures present (volume weighted) must land on the target's
    cls = present or [c for c in range(1, N_CLASSES) if dst_vol[c] > 0]
    fg_src = (src[cls] * src_vol[cls, None]).sum(0) / max(src_vol[cls].sum(), 1e-12)
    fg_dst = (dst[cls] * dst_vol[cls, None]).sum(0) / dst_vol[cls].sum()
    offset = fg_dst - (s * rot @ (fg_src - c) + c)
    return p, offset


def optimise(model, target, coarse: Grid, p0, offset, cfg: FitConfig):
    """Adam on ``u`` (``params = tanh(u)``) against the coarse target fractions.

    Only the voxels near a surface are soft; the Dice sums over all other voxels are
    constants taken from the exact flags, refreshed with the neighbourhood.
    """
    dtype = torch.float64
    tgt_all = target[1:].reshape(N_CLASSES - 1, -1)  # (7, N) classes 1..7
    tgt_sum = torch.as_tensor(tgt_all.sum(1), dtype=dtype)
    present = tgt_sum > 0
    lut = precedence_lut(model.topology.names)
    u = torch.tensor(np.arctanh(np.clip(p0, -0.95, 0.95)), dtype=dtype, requires_grad=True)
    off = torch.as_tensor(offset, dtype=dtype)
    adam = _Adam(u, cfg.lr)
    soft = SoftConfig(tau_mm=cfg.tau_factor * float(min(coarse.spacing_mm)), band=6.0)
    history = []
    for step in range(cfg.steps):
        verts = model.decode_torch(torch.tanh(u)) + off
        if step % cfg.refresh_every == 0:
            nbhd = neighbourhood(verts.detach().numpy(), model.topology, coarse, soft)
            act = nbhd.active
            tgt = torch.as_tensor(tgt_all[:, act], dtype=dtype)  # (7, A)
            # constant parts of the sums from the hard labels outside the active voxels
            outside = np.ones(tgt_all.shape[1], bool)
            outside[act] = False
            hard = lut[nbhd.flags.reshape(-1)[outside]]
            onehot = hard[None, :] == np.arange(1, N_CLASSES)[:, None]  # (7, N - A)
            c_inter = torch.as_tensor((onehot * tgt_all[:, outside]).sum(1), dtype=dtype)
            c_pred = torch.as_tensor(onehot.sum(1), dtype=dtype)
        occ = soft_occupancy_active(verts, model.topology, coarse, soft, nbhd)  # (S, A)
        probs = soft_labels(occ, model.topology.names)[1:]  # (7, A) in code order
        inter = (probs * tgt).sum(1) + c_inter
        denom = probs.sum(1) + c_pred + tgt_sum
        dice = 2 * inter / denom.clamp_min(1e-6)
        loss = 1 - dice[present].mean()
        adam.step(loss)
        history.append(float(loss.detach()))
    return np.tanh(u.detach().numpy()), history


class _Adam:
    """Plain Adam on one tensor (torch.optim imports torch._dynamo: seconds at first use)."""

    def __init__(self, x: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.x, self.lr, self.b1, self.b2, self.eps = x, lr, betas[0], betas[1], eps
        self.m = torch.zeros_like(x)
        self.v = torch.zeros_like(x)
        self.t = 0

    def step(self, loss: torch.Tensor) -> None:
        (g,) = torch.autograd.grad(loss, self.x)
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        with torch.no_grad():
            self.x.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))


def overlap_scores(pred: np.ndarray, true: np.ndarray, slab: int = 32) -> tuple[dict, float]:
    """Dice per structure present in ``true`` and the binary-heart IoU (slab-wise counts).

    The binary heart is the union of the structures the reference annotates: a label map
    without great vessels is compared with the fitted heart without its vessels.
    """
    conf = np.zeros((N_CLASSES, N_CLASSES), np.int64)  # [true, pred]
    for z in range(0, true.shape[0], slab):
        t = np.clip(true[z : z + slab], 0, N_CLASSES - 1).astype(np.uint8)
        p = pred[z : z + slab].astype(np.uint8)
        conf += np.bincount((t * N_CLASSES + p).ravel(),
                            minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)
    dice = {}
    present = [c for c in range(1, N_CLASSES) if conf[c].sum() > 0]
    for c in present:
        dice[NAME_OF[c]] = float(2 * conf[c, c] / (conf[c].sum() + conf[:, c].sum()))
    inter = conf[1:][:, present].sum()
    union = conf[1:].sum() + conf[:, present].sum() - inter
    return dice, float(inter / union) if union else 0.0
