"""The world's chest around a voxelised heart: wall layers, skeleton and abdomen.

Everything here is unlabelled background tissue (:class:`WorldTissue`); the seven heart
labels are never changed. Built from a :class:`~fedsim_app.anatomy.torso.TorsoParams`
(body size, layers, rib pitch, diaphragm) on the case grid, mostly in 2-D (the wall
layers do not depend on z) with 3-D work only where a structure needs it:

- a curved chest wall (a super-ellipse, squarer than an ellipse) with skin, a
  subcutaneous fat layer thicker at the back and sides, pectoral, lateral and
  paraspinal muscle, and breast tissue in front for the adult women;
- oblique curved ribs as tubes of elliptical cross-section in the cage shell, ending
  in costal cartilage beside a segmented sternum (more segments in children), the
  vertebrae (body with discs, pedicles, laminae, transverse and spinous processes around
  the spinal canal) and the scapulae; every bone gets a one-voxel cortical shell round a
  trabecular (marrow) interior;
- two diaphragm domes (the right higher) with the liver under the right and the stomach
  with its gas bubble under the left.

The mediastinum and lungs are added by :mod:`fedsim_app.anatomy.mediastinum`.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from fedsim_app.anatomy.torso import TorsoParams
from fedsim_app.io.grid import Grid


class WorldTissue(IntEnum):
    """Background tissue classes of the world's scene (all < the heart's scene codes)."""

    AIR = 0
    FAT = 1  # subcutaneous, mediastinal and epicardial fat
    SOFT_TISSUE = 2  # skin, pericardium, discs, spinal canal, abdomen, oesophagus
    LUNG = 3
    MUSCLE = 4
    CORTICAL_BONE = 5
    MARROW = 6  # trabecular bone
    LIVER = 7
    CARTILAGE = 8
    MYOCARDIUM = 9  # unlabelled heart wall (RV free wall, atrial walls)
    AORTA = 10  # arch beyond the label and descending aorta
    PULMONARY_ARTERY = 11  # lung arteries beyond the label
    PULMONARY_VEIN = 12
    SVC = 13
    IVC = 14
    GAS = 15  # airway lumen, stomach gas
    THYMUS = 16
    BREAST = 17  # fibroglandular tissue
    STOMACH = 18
    CORONARY = 19  # coronary arteries in the epicardial fat


def body_scale(p: TorsoParams) -> float:
    """Linear body scale (1 = adult) the torso was sampled with."""
    return p.vertebra_radius_mm / 19.0


def wall_geometry(p: TorsoParams, grid: Grid, breast_mm: float = 0.0):
    """Depth below the skin (ny, nx) in mm and the in-plane coordinates about the body.

    The outline is a super-ellipse of exponent 2.4; depth is measured along the ray from
    the body centre, ``(1 - ρ)·R(θ)``. ``breast_mm`` pushes the skin out in front of the
    pectorals (two lobes either side of the sternum).
    """
    _, y1, x1 = grid.axis_centers()
    bx, by = p.body_center_xy_mm
    dx, dy = x1[None, :] - bx, y1[:, None] - by  # (1, nx), (ny, 1)
    n = 2.4
    a, b = p.half_width_mm, p.half_depth_mm
    rho = (np.abs(dx / a) ** n + np.abs(dy / b) ** n) ** (1 / n)  # (ny, nx)
    r = np.hypot(dx, dy)
    radius = r / np.maximum(rho, 1e-6)  # R(θ): the outline's distance along the ray
    depth = (1.0 - rho) * radius
    if breast_mm > 0:
        lobe = np.exp(-0.5 * ((np.abs(dx) - 0.45 * a) / (0.22 * a)) ** 2)
        depth = depth + breast_mm * lobe * np.clip(dy / b, 0, 1) ** 2
    return depth, dx, dy


def build_chest(p: TorsoParams, grid: Grid, *, breast_mm: float = 0.0,
                sternum_segment_mm: float = 40.0, scapula_rise_mm: float = 0.0):
    """Wall, skeleton and abdomen classes on ``grid``.

    Returns
    -------
    classes : (nz, ny, nx) uint8 :class:`WorldTissue` (thoracic cavity left as LUNG)
    cavity : (nz, ny, nx) bool, the thoracic cavity above the diaphragm inside the cage
    dome : (ny, nx) float, z of the diaphragm surface
    spine_yx : (x, y) world mm of the vertebral body's centre
    """
    T = WorldTissue
    s = body_scale(p)
    z1, y1, x1 = grid.axis_centers()
    shape = grid.shape
    depth, dx, dy = wall_geometry(p, grid, breast_mm)
    a, b = p.half_width_mm, p.half_depth_mm
    skin = 1.5
    # fat thicker at the sides and back than over the sternum
    lateral = np.clip(np.abs(dx) / a, 0, 1)
    fat = p.fat_mm * (0.6 + 0.5 * lateral + 0.3 * (dy < 0))
    pect = np.exp(-0.5 * ((np.abs(dx) - 0.4 * a) / (0.2 * a)) ** 2) * (dy > 0)
    muscle = p.muscle_mm * (0.8 + 1.2 * pect)
    cage_out = skin + fat + muscle
    cage_in = cage_out + 1.3 * p.rib_thickness_mm
    wall2d = np.full(depth.shape, T.AIR, np.uint8)
    wall2d[depth >= 0] = T.SOFT_TISSUE
    wall2d[depth >= skin] = T.FAT
    if breast_mm > 0:
        gland = (dy > 0) & (depth > skin + 4) & (depth < skin + fat + 0.8 * breast_mm)
        gland &= np.abs(np.abs(dx) - 0.45 * a) < 0.18 * a
        wall2d[gland] = T.BREAST
    wall2d[depth >= skin + fat] = T.MUSCLE
    # spine and paraspinal muscle
    r = p.vertebra_radius_mm
    bx, by = p.body_center_xy_mm
    vy = by - b + p.fat_mm + p.muscle_mm + 2.6 * r
    ys = y1[:, None] - vy
    paraspinal = (np.abs(dx) < 2.6 * r) & (ys < -0.4 * r) & (depth >= skin + fat)
    wall2d[paraspinal] = T.MUSCLE
    inner = depth >= cage_in  # (ny, nx) inside the rib cage
    wall2d[inner] = T.LUNG  # placeholder for the cavity / abdomen
    classes = np.broadcast_to(wall2d, shape).copy()

    # diaphragm domes (right higher), z of the surface per (y, x)
    side = (dx > 0).astype(float)
    cx = np.where(dx > 0, 0.45, -0.45) * a
    dome = (p.diaphragm_z_mm + side * p.right_dome_rise_mm
            - 60.0 * s * (((dx - cx) / (0.55 * a)) ** 2 + (dy / (0.8 * b)) ** 2))
    z = z1[:, None, None]
    above = z > dome[None]
    cavity = above & inner[None]
    abdomen = ~above & inner[None]
    classes[abdomen] = T.SOFT_TISSUE
    # the liver's left edge: the left lobe reaches further left in front, and the
    # edge recedes to the right further down (no straight vertical seam)
    edge = (-0.15 * a - 0.25 * a * np.clip(dy / b + 0.2, 0, 1))[None] \
        + 0.35 * a * np.clip((p.diaphragm_z_mm - z) / (90 * s), 0, 1)  # (nz, ny, 1)
    liver = abdomen & (dx[None] > edge) & (z > dome[None] - 160 * s)
    classes[liver] = T.LIVER
    # stomach under the left dome, gas in its fundus (a flat fluid level below)
    top_left = p.diaphragm_z_mm
    sc = np.array([bx - 0.4 * a, by + 0.1 * b, top_left - 45 * s])
    sr = np.array([0.22 * a, 0.32 * b, 45 * s])
    q = (((x1[None, None, :] - sc[0]) / sr[0]) ** 2 + ((y1[None, :, None] - sc[1]) / sr[1]) ** 2
         + ((z - sc[2]) / sr[2]) ** 2)
    stomach = (q <= 1) & abdomen
    classes[stomach] = T.STOMACH
    classes[stomach & (z > sc[2] + 0.35 * sr[2]) & (q <= 0.8)] = T.GAS

    bone = _skeleton(p, grid, depth, dx, dy, cage_out, cage_in, dome, vy,
                     sternum_segment_mm, scapula_rise_mm, classes)
    _cortex_and_marrow(classes, bone)
    return classes, cavity & ~bone, dome, (bx, vy)


def _skeleton(p, grid, depth, dx, dy, cage_out, cage_in, dome, vy, segment_mm,
              scapula_rise_mm, classes) -> np.ndarray:
    """Bone mask (nz, ny, nx); costal cartilage and discs written into ``classes``."""
    T = WorldTissue
    s = body_scale(p)
    z1, y1, _ = grid.axis_centers()
    a, b = p.half_width_mm, p.half_depth_mm
    r = p.vertebra_radius_mm
    bone = np.zeros(grid.shape, bool)
    ys = y1[:, None] - vy  # (ny, 1)

    # ribs: tubes in the cage shell, running down towards the front and curving
    centre = 0.5 * (cage_out + cage_in)
    half_t = 0.5 * p.rib_thickness_mm
    shell = (np.abs(depth - centre) <= half_t) & ~((np.abs(dx) < 1.8 * r) & (ys < 1.0 * r))
    iy, ix = np.nonzero(shell)  # shell pixels, (n,)
    if iy.size:
        u = (depth[iy, ix] - centre[iy, ix]) / half_t
        yy = y1[iy] - (p.body_center_xy_mm[1] - b)  # mm in front of the back
        ang = np.abs(dx[0, ix]) / a
        # oblique: the front of a rib ~1.2 pitches lower than its back; curved laterally
        shift = 0.45 * yy + 10.0 * s * np.sin(np.pi * np.clip(ang, 0, 1))
        w = np.mod(z1[:, None] + shift[None, :] - p.rib_phase_mm, p.rib_pitch_mm)
        w = (w - 0.5 * p.rib_pitch_mm) / (0.5 * p.rib_width_mm)  # (nz, n)
        tube = u[None, :] ** 2 + w**2 <= 1.0
        tube &= z1[:, None] > dome[iy, ix][None, :] - 60 * s
        front = (dy[iy, 0] > 0) & (np.abs(dx[0, ix]) < 2.4 * p.sternum_half_width_mm)
        zi, k = np.nonzero(tube)
        is_cart = front[k]
        classes[zi[is_cart], iy[k[is_cart]], ix[k[is_cart]]] = T.CARTILAGE
        bone[zi[~is_cart], iy[k[~is_cart]], ix[k[~is_cart]]] = True

    # sternum: elliptical section in the front of the cage, segmented by cartilage
    st = 1.1 * p.rib_thickness_mm
    sq = (dx / p.sternum_half_width_mm) ** 2 + ((depth - cage_out - 0.5 * st) / (0.5 * st)) ** 2
    sternum2d = (sq <= 1) & (dy > 0)
    zmask = z1 > p.diaphragm_z_mm - 15 * s
    gap = np.mod(z1 - p.rib_phase_mm, segment_mm) < 0.12 * segment_mm
    bone[(zmask & ~gap)[:, None, None] & sternum2d[None]] = True
    classes[(zmask & gap)[:, None, None] & sternum2d[None]] = T.CARTILAGE

    # vertebrae: body between discs, posterior arch round the canal, processes
    seg = np.mod(z1 - p.rib_phase_mm + 0.3 * p.rib_pitch_mm, p.rib_pitch_mm) / p.rib_pitch_mm
    disc = seg < 0.16
    post = (seg > 0.2) & (seg < 0.75)  # posterior elements span part of each level
    vbody = (dx / r) ** 2 + (ys / (0.85 * r)) ** 2 <= 1.0
    canal_y = -1.45 * r
    dc = np.hypot(dx, ys - canal_y)
    arch = (dc >= 0.48 * r) & (dc <= 0.8 * r) & (ys < -0.7 * r)
    pedicle = (np.abs(dx) > 0.4 * r) & (np.abs(dx) < 0.75 * r) & (ys < -0.6 * r) & (ys > canal_y)
    # spinous process: down the midline behind the arch, tapering
    back = np.clip((canal_y - 0.5 * r - ys) / (1.7 * r), 0, 1)  # 0 at its root, 1 at its tip
    spinous = (np.abs(dx) < (0.2 - 0.08 * back) * r) & (ys < canal_y - 0.5 * r) \
        & (ys > canal_y - 2.2 * r)
    # transverse processes: from the arch out and backwards (~30°), tapering
    lat = np.abs(dx) - 0.6 * r
    axis_y = canal_y + 0.1 * r - 0.55 * lat
    transverse = (lat > 0) & (lat < 1.1 * r) & (np.abs(ys - axis_y) < (0.26 - 0.08 * lat / r) * r)
    posterior2d = arch | pedicle | spinous | transverse
    canal = dc < 0.48 * r
    bone[~disc[:, None, None] & vbody[None]] = True
    classes[disc[:, None, None] & vbody[None]] = T.SOFT_TISSUE
    bone[post[:, None, None] & posterior2d[None]] = True
    classes[:, canal] = T.SOFT_TISSUE

    # scapulae: thin plates behind the ribs, posterolateral, upper chest only
    scap2d = ((dy < -0.2 * b) & (np.abs(dx) > 0.35 * a) & (np.abs(dx) < 0.8 * a)
              & (np.abs(depth - (cage_out - 0.45 * p.muscle_mm)) < max(2.0 * s, 1.2)))
    zs = z1 > p.heart_center_mm[2] - 20 * s + scapula_rise_mm
    bone[zs[:, None, None] & scap2d[None]] = True
    return bone


def _cortex_and_marrow(classes: np.ndarray, bone: np.ndarray) -> None:
    """Bone voxels: MARROW inside, CORTICAL_BONE on the one-voxel outer shell."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(bone, border_value=1)
    classes[bone] = WorldTissue.CORTICAL_BONE
    classes[inner] = WorldTissue.MARROW
