"""Mediastinum and lungs of the world's chest, placed around the voxelised heart labels.

Landmarks come from the labels themselves (chamber centroids, the top of the aorta and
pulmonary artery labels), so the vessels join the heart wherever the heart model puts
it. Added, all unlabelled: a thin wall round every chamber (RV free wall, atrial walls),
epicardial fat and the pericardium; mediastinal fat; the aortic arch continuing the
labelled aorta into the descending aorta beside the spine; SVC and IVC into the RA; four
pulmonary veins into the LA; trachea, carina and main bronchi; the oesophagus; the
thymus in children; and in the lungs branching, tapering artery, vein and airway trees
drawn with fractional occupancy (partial volume at thin vessels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsim_app.anatomy.chest import WorldTissue, body_scale
from fedsim_app.anatomy.torso import TorsoParams
from fedsim_app.anatomy.tubes import bezier, grow_tree, polyline_segments, tube_occupancy
from fedsim_app.io.grid import Grid

LV, MYO, RV, LA, RA, AO, PA = range(1, 8)


@dataclass
class Trees:
    """Fractional occupancy (nz, ny, nx) float32 of the lung trees (for partial volume)."""

    arteries: np.ndarray
    veins: np.ndarray
    airways: np.ndarray  # outer wall
    lumen: np.ndarray  # airway lumen
    heart_blur: np.ndarray  # the heart mask blurred by σ = 4 mm (reused for motion)


def _centroid(grid: Grid, mask: np.ndarray, top: bool = False) -> np.ndarray | None:
    """World xyz of a mask's centroid (``top``: of its highest 3 slices)."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        return None
    if top:
        idx = idx[idx[:, 0] >= idx[:, 0].max() - 2]
    return grid.index_to_world(idx.mean(axis=0))


def _lookup(mask: np.ndarray, grid: Grid):
    shape = np.array(mask.shape)

    def allowed(xyz: np.ndarray) -> np.ndarray:
        ijk = np.round(grid.world_to_index(xyz)).astype(int)
        ok = np.all((ijk >= 0) & (ijk < shape), axis=1)
        out = np.zeros(len(xyz), bool)
        out[ok] = mask[tuple(ijk[ok].T)]
        return out

    return allowed


def _coronaries(classes, labels, grid: Grid, near, h: float, s: float) -> None:
    """Coronary arteries in the grooves of the epicardial fat (class CORONARY).

    The atrioventricular groove (right coronary and circumflex) is where the epicardial
    fat crosses the plane between the atria and the ventricles; the anterior
    interventricular groove (LAD) is where it crosses the plane between LV and RV, on the
    front of the ventricles. ``near``: the epicardial fat next to the wall; the band
    kept is about a vessel wide.
    """
    cents = {k: _centroid(grid, labels == k) for k in (LV, RV, LA, RA)}
    if any(c is None for c in cents.values()):
        return
    atria = 0.5 * (cents[LA] + cents[RA])
    ventricles = 0.5 * (cents[LV] + cents[RV])
    axis = ventricles - atria
    axis /= np.linalg.norm(axis)
    av_point = atria + 0.45 * np.linalg.norm(ventricles - atria) * axis
    iv = cents[RV] - cents[LV]
    iv -= iv.dot(axis) * axis  # LV → RV, across the long axis
    iv /= max(np.linalg.norm(iv), 1e-9)
    iv_point = 0.5 * (cents[LV] + cents[RV])
    idx = np.argwhere(near)
    if idx.size == 0:
        return
    pts = grid.index_to_world(idx.astype(float))  # (n, 3) world xyz
    half = max(1.6 * s, 0.6 * h)
    av = np.abs((pts - av_point) @ axis) < half
    lad = ((np.abs((pts - iv_point) @ iv) < half) & ((pts - atria) @ axis > 0)
           & (pts[:, 1] > iv_point[1]))  # on the front (+y anterior) of the ventricles
    hit = idx[av | lad]
    classes[tuple(hit.T)] = WorldTissue.CORONARY


def build_mediastinum(classes: np.ndarray, cavity: np.ndarray, labels: np.ndarray,
                      p: TorsoParams, grid: Grid, spine_xy, rng: np.random.Generator, *,
                      age_years: float, vessel_length_mm: float = 22.0):
    """Write the mediastinum and lungs into ``classes`` (in place) and draw the trees.

    ``rng`` draws the trees' branching only (the caller seeds it from the case record).
    Returns the :class:`Trees` occupancy maps and the lung mask before the trees.
    """
    from scipy.special import ndtr

    from fedsim_app.anatomy.fields import smooth

    T = WorldTissue
    s = body_scale(p)
    z1, y1, x1 = grid.axis_centers()
    h = float(min(grid.spacing_mm))
    heart = labels > 0
    bx, by = p.body_center_xy_mm
    sx, sy = spine_xy
    r_v = p.vertebra_radius_mm

    # the cavity starts as lung; carve the mediastinum out of it
    med = np.zeros(grid.shape, bool)
    c = _centroid(grid, heart)
    hz = c[2] if c is not None else p.heart_center_mm[2]
    z = z1[:, None, None]
    y = y1[None, :, None]
    x = x1[None, None, :]
    # superior and posterior mediastinum: a column between sternum and spine from just
    # below the top of the LV and LA up, and a strip in front of the spine for the aorta
    # and oesophagus
    col_w = 0.12 * p.half_width_mm + 6 * s
    front = p.body_center_xy_mm[1] + p.half_depth_mm
    col_c, col_d = 0.5 * (front + sy), 0.5 * (front - sy)
    chambers = np.argwhere((labels == LV) | (labels == LA))
    z_top = grid.index_to_world(chambers[chambers[:, 0].argmax()].astype(float))[2] \
        if chambers.size else hz
    # wider at the back (round the arch and descending aorta) than behind the sternum
    taper = col_w * (0.55 + 0.45 * np.clip((front - y) / (front - sy), 0, 1))
    med |= ((((x - (bx - 0.05 * p.half_width_mm)) / taper) ** 2 + ((y - col_c) / col_d) ** 2
             <= 1) & (z > z_top - 10 * s))
    med |= (((x - (sx - 0.5 * r_v)) / (1.6 * r_v)) ** 2
            + ((y - (sy + 1.6 * r_v)) / (1.3 * r_v)) ** 2 <= 1)
    # heart wall, epicardial fat, pericardium and a margin of mediastinal fat: offsets
    # of the heart surface read off one blurred heart mask (a plane's blur Φ(-d/σ) at
    # distance d), rounder and cheaper than voxel dilations
    sigma = 4.0
    blur = smooth(heart, grid.spacing_mm, sigma)
    fat_mm = p.pericardial_fat_mm + 1.0

    def beyond(d_mm: float) -> np.ndarray:
        return blur > ndtr(-d_mm / sigma)

    wall = beyond(0.9 * h) & ~heart
    fat_in = beyond(fat_mm)
    peri = beyond(fat_mm + max(h, 1.0))
    med |= beyond(fat_mm + 5.0)
    med &= cavity
    classes[cavity & ~med] = T.LUNG
    classes[med] = T.FAT
    classes[peri & ~fat_in & cavity] = T.SOFT_TISSUE
    classes[wall & cavity] = T.MYOCARDIUM
    groove_fat = beyond(0.9 * h + max(h, 1.5)) & fat_in & ~wall & ~heart & cavity
    _coronaries(classes, labels, grid, groove_fat, h, s)

    def vertical(cx, cy, radius, z_lo, z_hi):  # a z-aligned tube, drawn in 2-D
        occ2d = np.clip((radius - np.hypot(x1[None, :] - cx, y1[:, None] - cy)) / h + 0.5, 0, 1)
        zs = (z1 >= z_lo) & (z1 <= z_hi)
        return (zs[:, None, None] * occ2d[None]).astype(np.float32)

    def draw(segments, cls, where=None):
        occ = segments if segments.ndim == 3 else tube_occupancy(segments, grid)
        m = (occ >= 0.5) & ~heart & (classes != T.CORTICAL_BONE) & (classes != T.MARROW)
        if where is not None:
            m &= where
        classes[m] = cls
        return occ

    top, bottom = z1[-1] + 10.0, z1[0] - 10.0
    # descending aorta beside the spine (left and in front), and the arch from the label
    r_da = 10.5 * s
    da = np.array([sx - 1.0 * r_v - 0.7 * r_da, sy + 1.15 * r_v + 0.4 * r_da])
    ao_top = _centroid(grid, labels == AO, top=True)
    arch_z = ao_top[2] if ao_top is not None else hz + 60 * s
    draw(vertical(*da, r_da, bottom, arch_z), T.AORTA)
    if ao_top is not None:
        apex = np.array([0.5 * (ao_top[0] + da[0]), 0.5 * (ao_top[1] + da[1]),
                         arch_z + 35 * s])
        draw(polyline_segments(bezier(ao_top, apex, [*da, arch_z]), 12.0 * s), T.AORTA)
    # SVC and IVC into the right atrium
    ra = _centroid(grid, labels == RA)
    if ra is not None:
        svc_x = ra[0] + 6 * s
        draw(polyline_segments([ra, [svc_x, ra[1] - 4 * s, ra[2] + 40 * s],
                                [svc_x, ra[1] - 8 * s, top]], 9.0 * s), T.SVC)
        draw(polyline_segments([ra, [ra[0] + 4 * s, ra[1] - 12 * s, ra[2] - 45 * s],
                                [ra[0] + 4 * s, ra[1] - 18 * s, bottom]], 11.0 * s), T.IVC)
    # oesophagus between the left atrium and the spine, trachea and bronchi above
    oes = np.array([sx - 0.3 * r_v, sy + 1.6 * r_v])
    occ_oes = vertical(*oes, 7.5 * s, bottom, top)
    classes[(occ_oes >= 0.5) & ~heart & cavity] = T.SOFT_TISSUE
    pa_top = _centroid(grid, labels == PA, top=True)
    carina_z = (pa_top[2] if pa_top is not None else hz + 50 * s) + 5 * s
    tr = np.array([sx + 0.1 * r_v, sy + 2.6 * r_v])
    carina = np.array([*tr, carina_z])
    bronchi = [carina + np.array([sgn * 40 * s, -8 * s, -28 * s]) for sgn in (1.0, -1.0)]
    airway_segs = [polyline_segments([[*tr, top], carina], 9.0 * s)]
    airway_segs += [polyline_segments([carina, e], 6.5 * s) for e in bronchi]
    # thymus in the anterior mediastinum of children
    if age_years < 14:
        th_c = np.array([bx - 0.05 * p.half_width_mm, by + 0.6 * p.half_depth_mm, hz + 55 * s])
        q = (((x - th_c[0]) / (28 * s)) ** 2 + ((y - th_c[1]) / (14 * s)) ** 2
             + ((z - th_c[2]) / (40 * s)) ** 2)
        classes[(q <= 1) & med & (classes == T.FAT)] = T.THYMUS

    # lungs and trees
    lung = classes == T.LUNG
    allowed = _lookup(lung | (med & ~heart), grid)
    in_heart = _lookup(heart, grid)

    def outside(start, d):  # march a root out of the heart labels, 2 mm at a time
        start = np.asarray(start, float)
        for _ in range(40):
            if not in_heart(start[None])[0]:
                break
            start = start + 2.0 * d / np.linalg.norm(d)
        return start, d

    la = _centroid(grid, labels == LA)
    vein_roots, art_roots = [], []
    if la is not None:
        for sgn in (1.0, -1.0):
            for dz in (1.0, -1.0):  # upper and lower veins, each draining two directions
                for dy in (-0.5, 0.3):
                    vein_roots.append(outside(la, np.array([sgn, dy, 0.5 * dz])))
    pa = labels == PA
    if pa.any():
        xs = np.argwhere(pa)
        for pick in (xs[:, 2].argmax(), xs[:, 2].argmin()):
            start = grid.index_to_world(xs[pick].astype(float))
            sgn = 1.0 if pick == xs[:, 2].argmax() else -1.0
            for d in (np.array([sgn, -0.2, 0.6]), np.array([sgn, 0.2, 0.0]),
                      np.array([sgn, -0.4, -0.7])):
                art_roots.append(outside(start, d))
    kw = dict(length_mm=vessel_length_mm * s, min_radius_mm=0.35 * h, allowed=allowed)
    arteries = tube_occupancy(grow_tree(rng, art_roots, radius_mm=7.5 * s, **kw), grid)
    veins = tube_occupancy(grow_tree(rng, vein_roots, radius_mm=6.0 * s, **kw), grid)
    air_roots = [(e, (e - carina) / np.linalg.norm(e - carina)) for e in bronchi]
    air_tree = grow_tree(rng, air_roots, radius_mm=5.0 * s, min_radius_mm=max(1.5 * s, 0.6 * h),
                         length_mm=vessel_length_mm * s, allowed=allowed)
    airway_segs.append(air_tree)
    wall = np.concatenate(airway_segs, axis=0)
    lumen_segs = wall.copy()
    wall[:, 6:8] += 1.5 * s  # airway wall ~1.5 mm round the lumen
    airways = tube_occupancy(wall, grid)
    lumen = tube_occupancy(lumen_segs, grid)
    free = ~heart & (classes != T.CORTICAL_BONE) & (classes != T.MARROW)
    classes[(airways >= 0.5) & free & (cavity | (classes == T.FAT))] = T.SOFT_TISSUE
    classes[(lumen >= 0.5) & free & cavity] = T.GAS
    vessel_free = free & ((classes == T.LUNG) | (classes == T.FAT))
    classes[(arteries >= 0.5) & vessel_free] = T.PULMONARY_ARTERY
    classes[(veins >= 0.5) & vessel_free & (arteries < 0.5)] = T.PULMONARY_VEIN
    return Trees(arteries, veins, airways, lumen, blur), lung
