"""Soft (differentiable) occupancy of the structures on a voxel grid, in torch.

Near a surface, each voxel centre ``p`` gets a smooth signed distance from an implicit
moving-least-squares fit of the closest faces (Kolluri's IMLS):
``d(p) = Σ_k w_k (p - c_k)·n_k`` over its ``k`` nearest face centroids ``c_k`` with unit
outward normals ``n_k`` and Gaussian weights ``w_k`` (held constant for the gradient), and
occupancy ``σ(-d/τ)``. Away from the surface (outside a band of a few ``τ``) occupancy is
the exact inside/outside of :mod:`fedsim_app.shape.voxelize`, which has zero gradient
there anyway. Gradients flow to the vertices through ``c_k`` and ``n_k``, hence to the 21
parameters through :func:`~fedsim_app.shape.torch_decode.decode_torch`.

Soft labels follow the hard precedence rule: a structure's probability is its own
occupancy times the chance that no structure of higher precedence claims the voxel.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import LABEL_OF
from fedsim_app.shape.voxelize import PRECEDENCE, structure_flags


@dataclass(frozen=True)
class SoftConfig:
    """Soft occupancy settings.

    Parameters
    ----------
    tau_mm : sigmoid temperature (mm); about half the grid spacing suits a coarse grid
    band : the smooth part extends ``band·tau_mm`` from the surface
    k : nearest face centroids blended per point (4 already gives gradients within
        cosine 0.99 of finite differences; more costs nearest-neighbour time)
    """

    tau_mm: float = 1.5
    band: float = 6.0
    k: int = 4


@dataclass
class Neighbourhood:
    """Which voxel centres lie in each structure's band, their nearest faces, and the
    exact inside flags of every voxel (computed from detached vertices)."""

    flags: np.ndarray  # (nz, ny, nx) uint8 structure bits
    points: list  # per structure: (n_s,) flat voxel indices in the band
    faces: list  # per structure: (n_s, k) face indices (into that structure's faces)
    weights: list  # per structure: (n_s, k) normalised weights
    active: np.ndarray | None = None  # (A,) sorted union of every structure's band voxels
    _torch: dict | None = None  # the same as tensors, per (dtype, device)

    def __post_init__(self) -> None:
        if self.active is None:
            self.active = np.unique(np.concatenate(self.points)) if self.points else (
                np.zeros(0, np.int64)
            )

    def hard_bits(self, flat_index: np.ndarray | None = None) -> np.ndarray:
        """(S, n) exact 0/1 occupancy at flat voxel indices (all voxels when None)."""
        n_s = len(self.points)
        f = self.flags.reshape(-1) if flat_index is None else self.flags.reshape(-1)[flat_index]
        return (f[None, :] >> np.arange(n_s, dtype=np.uint8)[:, None]) & 1

    def tensors(self, dtype, device):
        """``(hard (S, A) at the active voxels, [(pos, sel, nn, w)] per structure)`` as
        torch tensors (cached); ``pos`` locates a structure's band voxels in ``active``."""
        key = (dtype, str(device))
        if self._torch is None:
            self._torch = {}
        if key not in self._torch:
            hard = torch.as_tensor(self.hard_bits(self.active), dtype=dtype, device=device)
            per = []
            for i in range(len(self.points)):
                n, k = self.faces[i].shape
                # (n, F_s) sparse blend matrix: row j mixes point j's k nearest faces;
                # sorting the (distinct) columns of each row makes it coalesced as built
                order = np.argsort(self.faces[i], axis=1)
                cols = np.take_along_axis(self.faces[i], order, 1).reshape(-1)
                vals = np.take_along_axis(self.weights[i], order, 1).reshape(-1)
                idx = torch.as_tensor(np.stack([np.repeat(np.arange(n), k), cols]),
                                      device=device)
                blend = torch.sparse_coo_tensor(
                    idx, torch.as_tensor(vals, dtype=dtype, device=device),
                    (n, int(cols.max(initial=0)) + 1), is_coalesced=True,
                    check_invariants=False,
                )
                per.append((
                    torch.as_tensor(np.searchsorted(self.active, self.points[i]), device=device),
                    torch.as_tensor(self.points[i], device=device),
                    blend,
                ))
            self._torch[key] = (hard, per)
        return self._torch[key]


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch threads (0 leaves the setting alone), then restore it.

    The soft occupancy works on tensors of some 10⁴ elements: thread start-up costs more
    than it saves, and on a busy machine two threads ran a fitting step 10x slower than
    one. The setting is process-wide, so this is meant for a worker's own loop.
    """
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def grid_points(grid: Grid) -> np.ndarray:
    """World (x, y, z) of every voxel centre, (nz·ny·nx, 3) in C order (read-only)."""
    return _grid_points(grid)


@lru_cache(maxsize=8)
def _grid_points(grid: Grid) -> np.ndarray:
    zc, yc, xc = grid.axis_centers()
    z, y, x = np.meshgrid(zc, yc, xc, indexing="ij")
    pts = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    pts.setflags(write=False)
    return pts


@lru_cache(maxsize=8)
def _grid_points_torch(grid: Grid, dtype, device: str) -> torch.Tensor:
    return torch.as_tensor(np.array(_grid_points(grid)), dtype=dtype, device=device)


def neighbourhood(vertices: np.ndarray, topology, grid: Grid, cfg: SoftConfig) -> Neighbourhood:
    """Band voxels, nearest faces and blend weights for detached vertices (V, 3)."""
    vertices = np.asarray(vertices, float)
    flags = structure_flags(vertices, topology.faces, topology.face_bits(), grid)
    pts = grid_points(grid)
    band_mm = cfg.band * cfg.tau_mm
    sp = np.asarray(grid.spacing_mm)  # (z, y, x)
    # a cube (L∞ ball, per axis in cells) covers the Euclidean band; +1 for rounding
    reach = np.ceil(band_mm / sp).astype(int) + 1  # (z, y, x) cells
    out_pts, out_faces, out_w = [], [], []
    for i in range(len(topology.names)):
        f = topology.faces[topology.face_offsets[i] : topology.face_offsets[i + 1]]
        cent = vertices[f].mean(1)  # (F_s, 3)
        # cheap band candidates: cells holding a centroid, dilated by the band width
        # (faces outside the grid seed its border: a superset, filtered below)
        idx = np.rint(grid.world_to_index(cent)).astype(np.int64)
        idx = np.clip(idx, 0, np.array(grid.shape) - 1)
        seed = np.zeros(grid.shape, bool)
        seed[tuple(idx.T)] = True
        # separable box maximum: cost independent of the band width
        grown = ndimage.maximum_filter(seed.view(np.uint8), size=tuple(2 * reach + 1))
        cand = np.flatnonzero(grown)
        k = min(cfg.k, len(f))
        tree = cKDTree(cent)
        # cheap first pass: which candidates have any face centroid within the band
        d1, _ = tree.query(pts[cand], k=1, distance_upper_bound=band_mm)
        cand = cand[np.isfinite(d1)]
        dist, nn = tree.query(pts[cand], k=k)
        dist, nn = dist.reshape(len(cand), k), nn.reshape(len(cand), k)
        # blend radius: the local face spacing, never below the temperature
        h = np.maximum(dist[:, -1:], cfg.tau_mm)
        w = np.exp(-0.5 * (dist / h) ** 2)
        out_pts.append(cand)
        out_faces.append(nn)
        out_w.append(w / w.sum(1, keepdims=True))
    return Neighbourhood(flags, out_pts, out_faces, out_w)


def soft_occupancy(
    vertices: torch.Tensor,
    topology,
    grid: Grid,
    cfg: SoftConfig = SoftConfig(),
    nbhd: Neighbourhood | None = None,
) -> torch.Tensor:
    """Occupancy (S, nz, ny, nx) in [0, 1] of each structure, differentiable in ``vertices``.

    Parameters
    ----------
    vertices : (V, 3) torch tensor, world mm
    nbhd : reuse a :class:`Neighbourhood` computed for nearby vertices (saves the
        nearest-face search in optimisation loops); computed here when None
    """
    if nbhd is None:
        nbhd = neighbourhood(vertices.detach().cpu().numpy(), topology, grid, cfg)
    hard = torch.as_tensor(nbhd.hard_bits(), dtype=vertices.dtype, device=vertices.device)
    act = torch.as_tensor(nbhd.active, device=vertices.device)
    soft = soft_occupancy_active(vertices, topology, grid, cfg, nbhd)  # (S, A)
    full = hard.index_copy(1, act, soft)
    return full.reshape(len(topology.names), *grid.shape)


def soft_occupancy_active(
    vertices: torch.Tensor, topology, grid: Grid, cfg: SoftConfig, nbhd: Neighbourhood
) -> torch.Tensor:
    """Occupancy (S, A) at the neighbourhood's active voxels ``nbhd.active`` only.

    Every other voxel is exactly 0 or 1 (``nbhd.hard_bits``) with zero gradient, so a
    loss written as sums splits into this differentiable part and constants.
    """
    dtype, dev = vertices.dtype, vertices.device
    pts = _grid_points_torch(grid, dtype, str(dev))
    hard, per = nbhd.tensors(dtype, dev)
    faces = torch.as_tensor(topology.faces, device=dev)
    out = []
    for i in range(len(topology.names)):
        f = faces[topology.face_offsets[i] : topology.face_offsets[i + 1]]
        tri = vertices[f]  # (F_s, 3 corners, 3)
        cent = tri.mean(1)
        nrm = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        nrm = nrm / nrm.norm(dim=1, keepdim=True).clamp_min(1e-12)
        pos, sel, blend = per[i]  # (n,), (n,), sparse (n, F_used)
        # Σ_k w_k (p - c_k)·n_k = p·(Σ_k w_k n_k) - Σ_k w_k (c_k·n_k): two sparse products
        used = blend.shape[1]
        plane = torch.cat([nrm[:used], (cent[:used] * nrm[:used]).sum(1, keepdim=True)], 1)
        mixed = torch.sparse.mm(blend, plane)  # (n, 4)
        sd = (pts[sel] * mixed[:, :3]).sum(1) - mixed[:, 3]  # (n,)
        out.append(hard[i].index_put((pos,), torch.sigmoid(-sd / cfg.tau_mm)))
    return torch.stack(out)


def soft_labels(occupancy: torch.Tensor, names, precedence=PRECEDENCE) -> torch.Tensor:
    """Label probabilities (8, ...) in internal code order (0 = background).

    ``P(structure) = occ · Π (1 - occ of structures with higher precedence)``.
    """
    free = torch.ones_like(occupancy[0])
    probs = [None] * (len(LABEL_OF) + 1)
    for name in precedence:
        o = occupancy[list(names).index(name)]
        probs[LABEL_OF[name]] = o * free
        free = free * (1 - o)
    probs[0] = free
    return torch.stack(probs)
