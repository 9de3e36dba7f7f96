"""A procedural chest around the heart: tissue classes on any :class:`Grid`.

The torso is built slice-free from analytic shapes, vectorised over the whole grid:
an elliptical body (skin-to-skin) with a subcutaneous fat layer, chest-wall muscle, a
rib cage (sloping bands in an elliptical shell), sternum, spine (vertebral bodies with
discs, spinous processes), two lungs inside the rib cage above a domed diaphragm, the
liver dome under the right hemidiaphragm and the mediastinum around the heart, with a
layer of pericardial fat. Sizes scale with body height for age (adult chest ~320 mm
wide, ~220 mm deep; a newborn's ~110 x 90 mm).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import IntEnum

import numpy as np

from fedsim_app.anatomy.params import height_cm_for_age
from fedsim_app.io.grid import Grid


class Tissue(IntEnum):
    """Tissue classes of the torso volume (the CT simulator maps them to materials)."""

    AIR = 0  # outside the body
    FAT = 1  # subcutaneous fat
    SOFT_TISSUE = 2  # skeletal muscle, mediastinum, abdominal organs other than liver
    LUNG = 3  # inflated lung
    SPINE = 4  # vertebral bodies and posterior elements
    RIBS = 5
    STERNUM = 6
    LIVER = 7
    PERICARDIAL_FAT = 8
    HEART = 9  # voxels of the heart mask (overridden by the heart labels downstream)


@dataclass(frozen=True)
class TorsoParams:
    """Geometry of one chest (mm; positions are world RAS+ of the heart's frame)."""

    age_years: float
    heart_center_mm: tuple[float, float, float]
    body_center_xy_mm: tuple[float, float]  # axial centre of the chest ellipse
    half_width_mm: float  # left-right semi-axis, skin
    half_depth_mm: float  # antero-posterior semi-axis, skin
    fat_mm: float  # subcutaneous fat thickness
    muscle_mm: float  # chest-wall muscle between fat and ribs
    rib_thickness_mm: float
    rib_pitch_mm: float  # cranio-caudal distance between ribs
    rib_width_mm: float  # cranio-caudal height of one rib
    rib_phase_mm: float
    sternum_half_width_mm: float
    vertebra_radius_mm: float
    diaphragm_z_mm: float  # top of the left dome, world z
    right_dome_rise_mm: float  # the right dome sits higher (liver beneath)
    pericardial_fat_mm: float
    heart_semi_axes_mm: tuple[float, float, float]  # used when no heart mask is given

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> TorsoParams:
        names = {f.name for f in fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        )


def sample_torso_params(
    rng: np.random.Generator | int,
    age_years: float,
    *,
    heart_center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    heart_size_scale: float | None = None,
) -> TorsoParams:
    """Draw a chest for a body of ``age_years`` around a heart centred at
    ``heart_center_mm`` (``heart_size_scale``: the heart's length scale, 1 = adult; by
    default the body's own)."""
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
    height_cm = height_cm_for_age(age_years)
    s = height_cm / 175.0  # linear body scale
    hs = s if heart_size_scale is None else heart_size_scale
    adult = float(np.clip((age_years - 2.0) / 16.0, 0.0, 1.0))  # 0 infant .. 1 adult
    width = 160.0 * s * g.uniform(0.9, 1.12)
    # infants have rounder chests (AP/LR ~0.85), adults flatter (~0.7)
    depth = width * (0.85 - 0.15 * adult) * g.uniform(0.93, 1.07)
    hx, hy, hz = heart_center_mm
    return TorsoParams(
        age_years=float(age_years),
        heart_center_mm=(float(hx), float(hy), float(hz)),
        # the heart lies left of the midline and in the anterior half of the chest
        body_center_xy_mm=(hx + 25.0 * hs, hy - 0.2 * depth),
        half_width_mm=float(width),
        half_depth_mm=float(depth),
        fat_mm=float(g.uniform(5.0, 25.0) * (0.5 + 0.5 * s)),
        muscle_mm=float(g.uniform(6.0, 12.0) * s),
        rib_thickness_mm=float(9.0 * s),
        rib_pitch_mm=float(26.0 * s),
        rib_width_mm=float(11.0 * s),
        rib_phase_mm=float(g.uniform(0.0, 26.0 * s)),
        sternum_half_width_mm=float(16.0 * s),
        vertebra_radius_mm=float(19.0 * s),
        diaphragm_z_mm=float(hz - 50.0 * hs + g.normal(0.0, 5.0) * s),
        right_dome_rise_mm=float(g.uniform(10.0, 25.0) * s),
        pericardial_fat_mm=float(g.uniform(2.0, 6.0) * s),
        heart_semi_axes_mm=(60.0 * hs, 50.0 * hs, 60.0 * hs),
    )


def _dilate(mask: np.ndarray, mm: float, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    from scipy import ndimage

    steps = max(int(round(mm / float(np.mean(spacing_mm)))), 1)
    return ndimage.binary_dilation(mask, iterations=steps)


def build_torso_labels(
    params: TorsoParams, grid: Grid, heart_mask: np.ndarray | None = None
) -> np.ndarray:
    """Tissue classes (:class:`Tissue`) of the chest on ``grid``, ``(nz, ny, nx)`` uint8.

    ``heart_mask`` (bool, grid shape) marks the heart; without it an ellipsoid of
    ``params.heart_semi_axes_mm`` about ``params.heart_center_mm`` stands in.
    """
    p = params
    z1, y1, x1 = grid.axis_centers()
    z, y, x = z1[:, None, None], y1[None, :, None], x1[None, None, :]
    bx, by = p.body_center_xy_mm
    hx, hy, hz = p.heart_center_mm
    dx, dy = x - bx, y - by  # (1, 1, nx), (1, ny, 1)
    shape = grid.shape

    def ring(inset: float) -> np.ndarray:  # (1, ny, nx) inside the inset ellipse
        a, b = p.half_width_mm - inset, p.half_depth_mm - inset
        return (dx / a) ** 2 + (dy / b) ** 2 <= 1.0

    body = ring(0.0)
    under_fat = ring(p.fat_mm)
    cage_out = ring(p.fat_mm + p.muscle_mm)
    cage_in = ring(p.fat_mm + p.muscle_mm + p.rib_thickness_mm)
    labels = np.full(shape, Tissue.AIR, dtype=np.uint8)
    labels[np.broadcast_to(body, shape)] = Tissue.FAT
    labels[np.broadcast_to(under_fat, shape)] = Tissue.SOFT_TISSUE

    # diaphragm: two domes, the right one higher; z of the dome surface per (y, x)
    ax, ay = p.half_width_mm * 0.55, p.half_depth_mm * 0.8
    side = np.where(dx > 0, 1.0, 0.0)  # right hemithorax
    cx = bx + np.where(dx > 0, 0.45, -0.45) * p.half_width_mm
    dome = (
        p.diaphragm_z_mm
        + side * p.right_dome_rise_mm
        - 60.0 * (((x - cx) / ax) ** 2 + (dy / ay) ** 2)
    )  # (1, ny, nx)
    above = z > dome  # (nz, ny, nx)

    # spine: vertebral body with discs, and a spinous process behind it
    vy = by - p.half_depth_mm + p.fat_mm + p.muscle_mm + 2.6 * p.vertebra_radius_mm
    r = p.vertebra_radius_mm
    vert_body = (dx / r) ** 2 + ((y - vy) / (0.85 * r)) ** 2 <= 1.0
    disc = np.mod(z - p.rib_phase_mm, p.rib_pitch_mm) < 0.18 * p.rib_pitch_mm
    process = (np.abs(dx) < 0.3 * r) & (y < vy - 0.6 * r) & (y > vy - 2.6 * r)
    lamina = (np.abs(dx) < 1.1 * r) & (y < vy - 0.8 * r) & (y > vy - 1.4 * r)
    spine = (vert_body & ~disc) | process | lamina
    spine_zone = (np.abs(dx) < 1.6 * r) & (y < vy + 1.3 * r)

    # ribs: sloping bands (lower in front) in the shell between cage_out and cage_in
    band = np.mod(z + 0.35 * (y - (by - p.half_depth_mm)) - p.rib_phase_mm, p.rib_pitch_mm)
    front = (dy > 0) & (np.abs(dx) < 2.2 * p.sternum_half_width_mm)  # costal cartilage
    ribs = cage_out & ~cage_in & (band < p.rib_width_mm) & ~front & ~spine_zone
    ribs = ribs & (z > dome - 40.0)
    sternum = (
        (np.abs(dx) < p.sternum_half_width_mm)
        & (dy > 0)
        & cage_out
        & ~ring(p.fat_mm + p.muscle_mm + 1.3 * p.rib_thickness_mm)
        & (z > p.diaphragm_z_mm - 20.0)
    )

    # mediastinum: the heart (mask or ellipsoid), great vessels above it, a midline band
    if heart_mask is None:
        ha, hb, hc = p.heart_semi_axes_mm
        heart = ((x - hx) / ha) ** 2 + ((y - hy) / hb) ** 2 + ((z - hz) / hc) ** 2 <= 1.0
        heart = np.broadcast_to(heart, shape)
    else:
        heart = np.asarray(heart_mask, dtype=bool)
        if heart.shape != shape:
            raise ValueError(f"heart_mask shape {heart.shape} does not match grid {shape}")
    peri = _dilate(heart, p.pericardial_fat_mm, grid.spacing_mm) & ~heart
    mediastinum = _dilate(heart, p.pericardial_fat_mm + 4.0, grid.spacing_mm)
    vessels = (
        ((x - (hx + 8.0)) / (0.35 * p.half_width_mm)) ** 2 + ((y - (hy - 5.0)) / 40.0) ** 2 <= 1
    ) & (z > hz)
    midline = (np.abs(dx) < 0.12 * p.half_width_mm + 4.0) & (y > vy - r)
    lungs = cage_in & above & ~mediastinum & ~vessels & ~midline & ~spine_zone
    liver = ~above & cage_out & (dx > -0.1 * p.half_width_mm)
    liver = liver & (z > dome - 0.9 * p.half_width_mm)

    labels[np.broadcast_to(liver, shape)] = Tissue.LIVER
    labels[lungs] = Tissue.LUNG
    labels[np.broadcast_to(ribs, shape) & np.broadcast_to(body, shape)] = Tissue.RIBS
    labels[np.broadcast_to(sternum, shape)] = Tissue.STERNUM
    labels[np.broadcast_to(spine, shape)] = Tissue.SPINE
    labels[peri & np.broadcast_to(cage_in, shape)] = Tissue.PERICARDIAL_FAT
    labels[heart] = Tissue.HEART
    return labels
