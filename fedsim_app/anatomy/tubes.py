"""Tubes on a voxel grid: fractional occupancy of tapered segments, and branching trees.

A tube is a chain of segments ``(p0, p1, r0, r1)`` in world mm. It is drawn as the
union of spheres sampled along each segment (half a voxel apart), each voxel keeping its
largest occupancy ``clip(r - d + h/2, 0, 1) / h`` (``d`` its centre's distance to the
sample, ``h`` the voxel size): thin vessels get partial volume instead of vanishing, and
the whole tree is drawn in a handful of vectorised passes (one per sphere radius in
voxels), never one per segment.
"""

from __future__ import annotations

import numpy as np

from fedsim_app.io.grid import Grid


def sample_segments(segments: np.ndarray, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) world xyz and radii (N,) along segments (M, 8) = p0, p1, r0, r1.

    Points are ``step_mm`` apart, or a third of the thinner end's radius where that is
    longer (the union of spheres then deviates from the tube by under 2 % of its radius).
    """
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 8)
    if seg.size == 0:
        return np.zeros((0, 3)), np.zeros(0)
    length = np.linalg.norm(seg[:, 3:6] - seg[:, 0:3], axis=1)
    step = np.maximum(step_mm, np.minimum(seg[:, 6], seg[:, 7]) / 3.0)
    counts = np.maximum(np.ceil(length / step).astype(int), 1) + 1
    owner = np.repeat(np.arange(len(seg)), counts)
    # fraction along each segment: 0 .. 1 in counts[i] steps, (N,)
    starts = np.cumsum(counts) - counts
    t = (np.arange(counts.sum()) - starts[owner]) / (counts[owner] - 1)
    s = seg[owner]
    points = s[:, 0:3] + t[:, None] * (s[:, 3:6] - s[:, 0:3])
    radii = s[:, 6] + t * (s[:, 7] - s[:, 6])
    return points, radii


def tube_occupancy(segments: np.ndarray, grid: Grid) -> np.ndarray:
    """Fractional occupancy (nz, ny, nx) float32 in [0, 1] of the union of tubes."""
    h = float(min(grid.spacing_mm))
    points, radii = sample_segments(segments, 0.5 * h)
    shape = np.array(grid.shape)
    if len(points) == 0:
        return np.zeros(grid.shape, np.float32)
    idx = grid.world_to_index(points)  # (N, 3) fractional (z, y, x)
    reach = np.ceil(radii / h + 0.5).astype(int)  # voxels a sphere can touch, per point
    inside = np.all((idx > -reach[:, None] - 1) & (idx < shape + reach[:, None]), axis=1)
    idx, radii, reach = idx[inside], radii[inside], reach[inside]
    if len(idx) == 0:
        return np.zeros(grid.shape, np.float32)
    # draw into a volume padded by the largest reach: no bounds test per voxel
    pad = 2 * int(reach.max()) + 2
    out = np.zeros(tuple(shape + 2 * pad), dtype=np.float32)
    flat = out.reshape(-1)
    sp = np.asarray(grid.spacing_mm, dtype=np.float64)
    for k in np.unique(reach):
        sel = reach == k
        centre = np.round(idx[sel]).astype(int)  # (n, 3)
        frac = (centre - idx[sel]) * sp  # (n, 3) mm from the sample to its nearest voxel
        r = np.arange(-k, k + 1)
        offsets = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)  # (K, 3)
        off_mm = offsets * sp
        # squared distance of voxel centre+offset to the sample, (n, K)
        d2 = ((frac[:, None, :] + off_mm[None, :, :]) ** 2).sum(axis=2)
        occ = np.clip((radii[sel][:, None] - np.sqrt(d2)) / h + 0.5, 0.0, 1.0)
        hit = occ > 0
        n_i, k_i = np.nonzero(hit)
        vox = centre[n_i] + offsets[k_i] + pad
        lin = np.ravel_multi_index(tuple(vox.T), out.shape)
        np.maximum.at(flat, lin, occ[hit].astype(np.float32))
    return np.ascontiguousarray(out[pad:-pad, pad:-pad, pad:-pad])


def polyline_segments(points, radii) -> np.ndarray:
    """Segments (M, 8) of a polyline through ``points`` (n, 3) with ``radii`` (n,)."""
    p = np.asarray(points, dtype=np.float64)
    r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(p),))
    return np.concatenate([p[:-1], p[1:], r[:-1, None], r[1:, None]], axis=1)


def bezier(p0, p1, p2, n: int = 16) -> np.ndarray:
    """Points (n, 3) of the quadratic Bézier curve p0 → p2 pulled towards p1."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def grow_tree(
    rng: np.random.Generator,
    roots: list[tuple[np.ndarray, np.ndarray]],
    *,
    radius_mm: float,
    length_mm: float,
    min_radius_mm: float,
    allowed,
    spread_deg: float = 32.0,
    max_segments: int = 5000,
) -> np.ndarray:
    """A branching, tapering tree grown from ``roots`` (start point, direction).

    Each branch bifurcates into a major child (radius · 0.82-0.9, length · 0.8-0.95) and
    a minor one (· 0.6-0.72, · 0.6-0.8) turning off further, about ``spread_deg`` either
    side of the parent, with jitter and a pull away from the root (trees fan out to the
    periphery). A branch whose end fails ``allowed(xyz (n, 3)) -> bool (n,)`` turns away
    from its root once, else is halved and ends there, else is dropped.

    Returns segments (M, 8): p0, p1, r0, r1 in world mm.
    """
    segments: list[np.ndarray] = []
    # frontier rows: x, y, z, dx, dy, dz, radius, length, root x, y, z
    frontier = np.array([[*p, *_unit(np.asarray(d, float)), radius_mm, length_mm, *p]
                         for p, d in roots], dtype=np.float64).reshape(-1, 11)
    spread = np.deg2rad(spread_deg)
    while len(frontier) and sum(len(s) for s in segments) < max_segments:
        start, direction = frontier[:, 0:3], frontier[:, 3:6]
        radius, length = frontier[:, 6], frontier[:, 7]
        end = start + direction * length[:, None]
        ok = allowed(end)
        # a branch heading out of bounds turns away from its root once before it shrinks
        away0 = start - frontier[:, 8:11]
        away0 /= np.maximum(np.linalg.norm(away0, axis=1, keepdims=True), 1e-9)
        turned = direction + 1.2 * away0
        turned /= np.maximum(np.linalg.norm(turned, axis=1, keepdims=True), 1e-9)
        end_t = start + turned * (0.8 * length)[:, None]
        ok_t = allowed(end_t) & ~ok
        end = np.where(ok_t[:, None], end_t, end)
        frontier[ok_t, 3:6] = turned[ok_t]
        ok = ok | ok_t
        half = start + direction * (0.5 * length)[:, None]
        ok_half = allowed(half) & ~ok
        end = np.where(ok_half[:, None], half, end)
        keep = ok | ok_half
        segments.append(np.concatenate(
            [start[keep], end[keep], radius[keep, None], radius[keep, None]], axis=1))
        grow = keep & ~ok_half & (radius * 0.65 >= min_radius_mm)
        if not grow.any():
            break
        f = frontier[grow]
        e, d = end[grow], f[:, 3:6]
        away = e - f[:, 8:11]
        away /= np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-9)
        # a random axis perpendicular to the parent direction, (n, 3)
        perp = np.cross(d, rng.normal(size=d.shape))
        perp /= np.maximum(np.linalg.norm(perp, axis=1, keepdims=True), 1e-9)
        children = []
        # asymmetric bifurcation: a major child keeps most of the radius and direction,
        # a minor one turns off thinner (r_major³ + r_minor³ ≈ r³, Murray's law)
        for sign, r_lo, r_hi, turn, l_lo, l_hi in ((1.0, 0.82, 0.9, 0.45, 0.8, 0.95),
                                                   (-1.0, 0.6, 0.72, 1.3, 0.6, 0.8)):
            child_r = f[:, 6] * rng.uniform(r_lo, r_hi, size=len(d))
            angle = spread * turn * rng.uniform(0.7, 1.3, size=len(d))
            nd = np.cos(angle)[:, None] * d + sign * np.sin(angle)[:, None] * perp
            nd = nd + 0.25 * away + 0.15 * rng.normal(size=d.shape)
            nd /= np.linalg.norm(nd, axis=1, keepdims=True)
            scale = rng.uniform(l_lo, l_hi, size=len(d))
            children.append(np.concatenate(
                [e, nd, child_r[:, None], (f[:, 7] * scale)[:, None], f[:, 8:11]], axis=1))
        frontier = np.concatenate(children, axis=0)
    return np.concatenate(segments, axis=0) if segments else np.zeros((0, 8))
