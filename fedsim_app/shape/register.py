"""Register the template meshes to a label map, keeping vertex correspondence.

1. Rigid + SSM fit (:func:`~fedsim_app.shape.fit.fit_labels`): the 21 parameters and a
   frame offset bring the template close, every vertex where the model puts it.
2. Non-rigid refinement, structure by structure, on an isotropic grid around the heart
   (``spacing_mm``, 1 mm by default): the structure's region in the label map gets a
   signed distance field ``φ`` (mm, negative inside); each vertex takes a closest-point
   step ``-φ(v)·∇φ/|∇φ|`` (capped), the step is smoothed over the mesh (uniform
   Laplacian passes) and the total displacement from the SSM fit is regularised by a
   membrane term, so the surface stays smooth and the template's vertices keep their
   order on it. Topology and vertex count never change: the registered meshes are in
   correspondence with the model's and can be stacked into a new SSM.
3. Report: the exact voxelizer on the input grid gives per-structure Dice and the binary
   IoU; faces whose normal turned against the SSM fit's, and triangle pairs of one
   structure that cross each other, are counted. A case below ``min_mean_dice`` or
   with a fold or a self-intersection is failed, with the reason.

A structure's region is what its closed mesh should enclose: its own label, plus
voxels of higher-precedence structures (:data:`~fedsim_app.shape.voxelize.PRECEDENCE`)
that the SSM fit's mesh already covers (labels hide the overlap, e.g. the aortic root
inside the LV outflow), plus, for the epicardium (``lv_myocardium``), the LV blood pool
it always encloses. A structure the label map does not hold keeps its SSM-fit surface.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import LABEL_OF
from fedsim_app.shape.fit import FitConfig, FitResult, fit_labels, overlap_scores
from fedsim_app.shape.voxelize import PRECEDENCE, structure_flags, voxelize

# structures whose closed surface always encloses another's label
ENCLOSES = {"lv_myocardium": ("lv_blood_pool",)}


@dataclass(frozen=True)
class RegisterConfig:
    """Registration settings.

    Parameters
    ----------
    fit : the rigid + SSM fit run first
    spacing_mm : voxel size of the refinement grid (never finer than the label map's)
    margin_mm : room around the heart on the refinement grid
    iterations : closest-point steps per structure
    step : fraction of the capped signed distance moved per step
    max_step_mm : cap of one vertex move
    smooth_passes : Laplacian passes smoothing each step over the mesh
    membrane : weight pulling the total displacement towards its neighbours' mean
    min_mean_dice : a case whose mean per-structure Dice is lower fails
    repair_passes : most passes smoothing a folded or self-crossing patch away
    """

    fit: FitConfig = FitConfig()
    spacing_mm: float = 1.0
    margin_mm: float = 10.0
    iterations: int = 40
    step: float = 0.5
    max_step_mm: float = 2.0
    smooth_passes: int = 2
    membrane: float = 0.3
    min_mean_dice: float = 0.75
    repair_passes: int = 60

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["fit"] = self.fit.to_dict()
        return out


@dataclass(frozen=True)
class Registration:
    """What :func:`register_labels` found for one label map."""

    fit: FitResult  # the rigid + SSM fit the refinement started from
    vertices: np.ndarray  # (V, 3) registered vertices, world mm, the model's topology
    labels: np.ndarray  # (nz, ny, nx) uint8 voxelization of the registered meshes
    dice: dict = field(default_factory=dict)  # structure → Dice of the registered meshes
    binary_iou: float = 0.0
    flipped_faces: int = 0  # faces whose normal turned against the (untangled) fit's
    self_intersections: int = 0  # crossing triangle pairs within one structure
    seconds: float = 0.0
    min_mean_dice: float = 0.0

    @property
    def mean_dice(self) -> float:
        return float(np.mean(list(self.dice.values()))) if self.dice else 0.0

    @property
    def failure(self) -> str | None:
        """Why the case fails (None when it passes)."""
        if self.flipped_faces:
            return f"{self.flipped_faces} folded faces"
        if self.self_intersections:
            return f"{self.self_intersections} self-intersecting triangle pairs"
        if self.mean_dice < self.min_mean_dice:
            return f"mean Dice {self.mean_dice:.3f} below {self.min_mean_dice:.2f}"
        return None

    def to_dict(self) -> dict:
        return {
            "dice": {k: float(v) for k, v in self.dice.items()},
            "mean_dice": self.mean_dice,
            "binary_iou": float(self.binary_iou),
            "fit_dice": {k: float(v) for k, v in self.fit.dice.items()},
            "fit_binary_iou": float(self.fit.binary_iou),
            "flipped_faces": int(self.flipped_faces),
            "self_intersections": int(self.self_intersections),
            "ok": self.failure is None,
            "failure": self.failure,
            "seconds": float(self.seconds),
        }


def register_labels(model, labels: np.ndarray, grid: Grid,
                    cfg: RegisterConfig = RegisterConfig(),
                    fit: FitResult | None = None) -> Registration:
    """Fit the model, then refine every structure onto the label map's boundaries.

    Parameters
    ----------
    model : the :class:`~fedsim_app.shape.model.ShapeModel` whose topology is kept
    labels : (nz, ny, nx) internal codes 0..7 on ``grid``
    grid : the label map's canonical grid (any spacing)
    fit : a fit already made (skips step 1)
    """
    t0 = time.perf_counter()
    labels = np.asarray(labels)
    if fit is None:
        fit = scaled_fit(model, labels, grid, cfg.fit)
    verts, start = refine(model.topology, fit.vertices, labels, grid, cfg)
    out = voxelize(model, verts, grid)
    dice, iou = overlap_scores(out, labels)
    flips = flipped_faces(model.topology.faces, start, verts)
    crossings = sum(self_intersections(*model.topology.structure(verts, name))
                    for name in model.topology.names)
    return Registration(fit, verts, out, dice, iou, flips, crossings,
                        time.perf_counter() - t0, cfg.min_mean_dice)


def scaled_fit(model, labels: np.ndarray, grid: Grid, cfg: FitConfig | None = None
               ) -> FitResult:
    """:func:`fit_labels` on a heart first scaled to the model's mean size.

    The model's scale parameter spans ``exp(±log_scale)`` (±28 %); an infant's heart is
    a third of the adult mean's length. The label map's grid is stretched by ``k`` about
    the heart's centroid (same voxels, spacing × ``k``) so that the heart's volume
    matches the mean shape's (over the structures it holds), fitted, and the fitted
    vertices are shrunk back by ``1/k``; ``k = 1`` when the range suffices.
    """
    present = [c for c in range(1, 8) if (labels == c).any()]
    mean_lab = voxelize(model, model.decode(np.zeros(21)),
                        Grid.centered(64, 200.0 / 64, tuple(model.center_mm)))
    mean_ml = float(np.isin(mean_lab, present).sum()) * (200.0 / 64) ** 3
    voxel_ml = float(np.prod(grid.spacing_mm))
    k = float((mean_ml / max(float(np.isin(labels, present).sum()) * voxel_ml, 1e-9)) ** (1 / 3))
    cfg = FitConfig() if cfg is None else cfg
    limit = float(np.exp(0.8 * model.ranges.log_scale))
    if 1 / limit <= k <= limit:
        return fit_labels(model, labels, grid, cfg)
    fg = labels > 0
    n = float(fg.sum())
    centre_zyx = [float((fg.sum(tuple(b for b in range(3) if b != a)) * np.arange(
        fg.shape[a])).sum()) / n for a in range(3)]
    centre = grid.index_to_world(np.array(centre_zyx))  # (3,) x, y, z
    origin = centre + k * (np.asarray(grid.origin_mm) - centre)
    stretched = Grid(grid.shape, tuple(k * s for s in grid.spacing_mm), tuple(origin))
    fit = fit_labels(model, labels, stretched, cfg)
    verts = centre + (fit.vertices - centre) / k
    offset = fit.offset_mm  # kept as found; the vertices carry the scaling
    return FitResult(fit.params, offset, verts, fit.labels, fit.dice, fit.binary_iou,
                     fit.seconds, fit.loss_history)


def refinement_grid(labels: np.ndarray, grid: Grid, cfg: RegisterConfig) -> Grid:
    """Isotropic grid over the heart's bounding box plus ``margin_mm``."""
    fg = labels > 0
    if not fg.any():
        raise FedSimError("the label map holds background only: nothing to register")
    lo, hi = [], []
    for axis in range(3):  # z, y, x
        hit = np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != axis)))
        lo.append(hit[0])
        hi.append(hit[-1])
    w_lo = grid.index_to_world(np.array(lo, float)) - cfg.margin_mm  # (x, y, z)
    w_hi = grid.index_to_world(np.array(hi, float)) + cfg.margin_mm
    step = max(cfg.spacing_mm, float(min(grid.spacing_mm)))
    size = tuple(int(n) for n in (np.ceil((w_hi - w_lo) / step) + 1)[::-1])  # (z, y, x)
    return Grid.centered(size, step, tuple((w_lo + w_hi) / 2))


def resample_nearest(labels: np.ndarray, grid: Grid, target: Grid) -> np.ndarray:
    """Labels sampled at ``target``'s voxel centres (nearest; background outside)."""
    from fedsim_app.shape.soft import grid_points

    idx = np.rint(grid.world_to_index(grid_points(target))).astype(np.int64)  # (N, 3) zyx
    ok = np.all((idx >= 0) & (idx < np.array(grid.shape)), axis=1)
    out = np.zeros(len(idx), labels.dtype)
    out[ok] = labels[tuple(idx[ok].T)]
    return out.reshape(target.shape)


def structure_regions(topology, fit_vertices, fine_labels: np.ndarray, fine: Grid) -> dict:
    """``{name: (nz, ny, nx) bool}`` region each structure's mesh should enclose.

    Structures absent from the label map are left out.
    """
    flags = structure_flags(fit_vertices, topology.faces, topology.face_bits(), fine)
    regions = {}
    for i, name in enumerate(topology.names):
        own = fine_labels == LABEL_OF[name]
        if not own.any():
            continue
        higher = [LABEL_OF[n] for n in PRECEDENCE[: PRECEDENCE.index(name)]]
        hidden = np.isin(fine_labels, higher) & ((flags >> i) & 1).astype(bool)
        enclosed = np.isin(fine_labels, [LABEL_OF[n] for n in ENCLOSES.get(name, ())])
        regions[name] = own | hidden | enclosed
    return regions


def signed_distance(region: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Signed distance (mm, float32) to the region's boundary: negative inside.

    The boundary lies half a voxel beyond the outermost inside voxel centre.
    """
    from scipy.ndimage import distance_transform_edt

    half = 0.5 * spacing_mm
    outside = distance_transform_edt(~region, sampling=spacing_mm) - half
    inside = distance_transform_edt(region, sampling=spacing_mm) - half
    return np.where(region, -inside, outside).astype(np.float32)


def refine(topology, fit_vertices: np.ndarray, labels: np.ndarray, grid: Grid,
           cfg: RegisterConfig = RegisterConfig()) -> np.ndarray:
    """Move each structure's vertices onto its region's boundary (see module docstring).

    Returns
    -------
    vertices : (V, 3) registered, same order and topology as ``fit_vertices``
    start : (V, 3) where the refinement started: the fit, Taubin-smoothed in a structure
        whose decoded surface crossed itself (folds are counted against these normals)
    """
    # the mesh checks live with the procedural heart (anatomy); importing them here, not at the
    # top, keeps the world out of the model side (tests/models/test_world_model_split.py)
    from fedsim_app.anatomy.templates import TUBES
    fine = refinement_grid(labels, grid, cfg)
    fine_labels = resample_nearest(labels, grid, fine)
    regions = structure_regions(topology, fit_vertices, fine_labels, fine)
    out = np.array(fit_vertices, float)
    start = out.copy()
    for i, name in enumerate(topology.names):
        if name not in regions:
            continue
        v0, v1 = topology.vertex_offsets[i : i + 2]
        _, faces = topology.structure(out, name)
        tube = TUBES.get(name)
        out[v0:v1], start[v0:v1] = _refine_structure(out[v0:v1], faces, regions[name],
                                                     fine, cfg, tube and tube[1])
    return out, start


def _refine_structure(verts, faces, region, fine: Grid, cfg: RegisterConfig,
                      n_around: int | None = None) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    from fedsim_app.anatomy.heart_checks import neighbour_mean, untangle

    # crop the field to the region and the mesh (plus room to move) to keep the EDT small
    h = float(fine.spacing_mm[0])
    idx = fine.world_to_index(verts)  # (n, 3) z, y, x
    hit = np.argwhere(region)
    pad = int(np.ceil((cfg.margin_mm + cfg.max_step_mm) / h)) + 2
    lo = np.maximum(np.minimum(hit.min(0), np.floor(idx.min(0))).astype(int) - pad, 0)
    hi = np.minimum(np.maximum(hit.max(0), np.ceil(idx.max(0))).astype(int) + pad + 1,
                    np.array(fine.shape))
    crop = region[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    phi = signed_distance(crop, h)
    grads = np.gradient(phi, h)  # three (z, y, x) arrays, mm per mm

    def sample(v):  # signed distance (n,) and its gradient (n, 3) x, y, z at vertices
        coords = (fine.world_to_index(v) - lo).T  # (3, n) z, y, x within the crop
        d = map_coordinates(phi, coords, order=1, mode="nearest")
        g_zyx = np.stack([map_coordinates(g, coords, order=1, mode="nearest") for g in grads])
        return d, g_zyx[::-1].T

    smooth = neighbour_mean(faces, len(verts))
    base = np.array(verts, float)
    if n_around is not None:  # a great vessel: placed on its region, then unbent
        base = unbend_tube(rigid_to_field(base, sample), n_around)
    base = _taubin_until_clean(base, faces, smooth)
    v = base.copy()
    for _ in range(cfg.iterations):
        d, g = sample(v)
        g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-6)
        move = -np.clip(d, -cfg.max_step_mm, cfg.max_step_mm)[:, None] * g
        for _ in range(cfg.smooth_passes):
            move = 0.5 * move + 0.5 * (smooth @ move)
        v = v + cfg.step * move
        u = v - base  # total displacement from the SSM fit: keep it a membrane
        v = base + (1 - cfg.membrane) * u + cfg.membrane * (smooth @ u)
    return untangle(base, v, faces, cfg.repair_passes, smooth), base


def rigid_to_field(v: np.ndarray, sample, iterations: int = 30) -> np.ndarray:
    """``v`` moved by the rigid motion (shift, rotation about its centroid) that brings it
    onto the zero level of a signed distance field (Gauss-Newton on ``Σ φ(x)²``;
    ``sample(v) -> (φ (n,), ∇φ (n, 3))``); ``v`` itself when that does not lower the RMS
    distance. No scale: a surface shrunk onto a point of the boundary would score zero.

    Closest-point steps only reach a boundary near the start: a great vessel that the
    SSM fit put beside its label (a dilated CHD trunk the model's scale couples to the
    chambers) would flatten onto its near side. Placed rigidly first, it keeps its
    tubular shape.
    """
    from fedsim_app.anatomy.shapes import rotation_matrix

    def rms(x):
        return float(np.sqrt(np.mean(sample(x)[0] ** 2)))

    cur, start_rms = v, rms(v)
    for _ in range(iterations):
        d, g = sample(cur)
        c = cur.mean(0)
        r = cur - c
        # φ(c + t + R(ω) r) ≈ φ + ∇φ·t + ω·(r × ∇φ), (n, 6)
        jac = np.concatenate([g, np.cross(r, g)], axis=1)
        step = np.linalg.solve(jac.T @ jac + 1e-3 * np.eye(6) * len(d), -jac.T @ d)
        t = step[:3] * min(1.0, 5.0 / max(float(np.linalg.norm(step[:3])), 1e-9))
        w = step[3:6] * min(1.0, 0.1 / max(float(np.linalg.norm(step[3:6])), 1e-9))
        cur = c + t + r @ rotation_matrix(w).T
    return cur if rms(cur) < start_rms else v


def unbend_tube(v: np.ndarray, n_around: int, margin: float = 1.25) -> np.ndarray:
    """A capped tube (rings of ``n_around`` vertices, then the two cap centres) whose
    centreline bends tighter than ``margin`` × its radius straightened there, keeping
    each ring's shape and vertex order (correspondence): a decoded SSM tube can bend
    tighter than a dilated trunk's radius allows, its inner wall crossing itself.
    """
    from fedsim_app.anatomy.shapes import rotation_matrix
    from fedsim_app.anatomy.vessels import unfold

    n_rings = (len(v) - 2) // n_around
    rings = v[: n_rings * n_around].reshape(n_rings, n_around, 3)
    centre = rings.mean(1)  # (R, 3)
    radii = np.linalg.norm(rings - centre[:, None], axis=2).mean(1)
    line = unfold(centre, radii, margin)
    if np.allclose(line, centre):
        return v
    t0, t1 = np.gradient(centre, axis=0), np.gradient(line, axis=0)
    t0 /= np.linalg.norm(t0, axis=1, keepdims=True)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    out = np.array(v, float)
    for k in range(n_rings):  # turn ring k's offsets from its old tangent to the new one
        axis = np.cross(t0[k], t1[k])
        sin = float(np.linalg.norm(axis))
        angle = np.arctan2(sin, float(t0[k] @ t1[k]))
        rot = rotation_matrix(axis / sin * angle) if sin > 1e-12 else np.eye(3)
        out[k * n_around:(k + 1) * n_around] = line[k] + (rings[k] - centre[k]) @ rot.T
    out[-2:] += np.stack([line[0] - centre[0], line[-1] - centre[-1]])
    return out


def _taubin_until_clean(v, faces, smooth, passes: int = 20) -> np.ndarray:
    """The fit's surface, Taubin-smoothed (λ 0.5, μ -0.53: no shrinkage) around the
    faces that cross (a patch of 3 rings, widened every pass) while it crosses itself
    (a decoded RV crescent can fold at a thin tip); unchanged when clean, and unchanged
    away from the crossing."""
    from fedsim_app.anatomy.heart_checks import crossing_pairs
    for k in range(passes):
        pairs = crossing_pairs(v, faces)
        if not len(pairs):
            break
        patch = np.zeros(len(v), bool)
        patch[faces[pairs.ravel()].ravel()] = True
        for _ in range(3 + k):
            patch |= (smooth @ patch.astype(float)) > 0
        w = patch[:, None].astype(float)
        v = v + 0.5 * w * (smooth @ v - v)
        v = v - 0.53 * w * (smooth @ v - v)
    return v


def flipped_faces(faces: np.ndarray, before: np.ndarray, after: np.ndarray) -> int:
    """Faces whose normal points against (or collapsed from) its normal in ``before``."""
    from fedsim_app.anatomy.heart_checks import face_normals
    a, b = face_normals(before, faces), face_normals(after, faces)
    dots = (a * b).sum(1)
    return int(((dots <= 0) | (np.linalg.norm(b, axis=1) < 1e-12)).sum())


def self_intersections(vertices: np.ndarray, faces: np.ndarray) -> int:
    """Number of triangle pairs of one closed mesh that cross each other."""
    from fedsim_app.anatomy.heart_checks import crossing_pairs
    return len(crossing_pairs(vertices, faces))
