"""The 21 shape parameters and their mapping to physical quantities.

A shape is described by 21 numbers in ``[-1, 1]`` (what a ``tanh`` output gives, as in
the paper's shape generator): 14 SSM mode weights, then 3 rotations, 3 translations and
1 log-scale. :class:`ParamRanges` maps them to physical values; the mapping is linear
and clamped, so a value outside ``[-1, 1]`` never leaves the documented range:

=================  ==========================================  ====================
index              physical value                              default range
=================  ==========================================  ====================
0 .. 13            mode weight ``b_i = k·sqrt(λ_i)·p_i``       k = 1.5
14, 15, 16         rotation about world x, y, z (radians)      ±π/12 each
17, 18, 19         translation along world x, y, z (mm)        ±20 mm each
20                 scale ``s = exp(log_scale_max·p)``          exp(±0.25)
=================  ==========================================  ====================

The rigid part acts about the SSM centre ``c``: ``v' = s·R·(v - c) + c + t`` with
``R = Rz·Ry·Rx`` (rotation about x first).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

N_MODES = 14
N_RIGID = 7
N_PARAMS = N_MODES + N_RIGID
PARAM_NAMES: tuple[str, ...] = tuple(f"mode_{i}" for i in range(N_MODES)) + (
    "rot_x",
    "rot_y",
    "rot_z",
    "trans_x",
    "trans_y",
    "trans_z",
    "log_scale",
)


@dataclass(frozen=True)
class ParamRanges:
    """Physical range of each normalised parameter (``p = ±1`` reaches the bound).

    Parameters
    ----------
    mode_sd : mode weights reach ``±mode_sd·sqrt(λ_i)`` (the paper's 1.5)
    rotation_rad : rotation bound per axis
    translation_mm : translation bound per axis
    log_scale : bound of ``log(s)``
    """

    mode_sd: float = 1.5
    rotation_rad: float = math.pi / 12
    translation_mm: float = 20.0
    log_scale: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ParamRanges:
        return cls(**{k: float(v) for k, v in d.items()})


@dataclass(frozen=True)
class RigidTransform:
    """``v' = scale·R·(v - center) + center + translation`` (all world mm, RAS+)."""

    rotation: np.ndarray  # (3, 3)
    translation_mm: np.ndarray  # (3,)
    scale: float
    center_mm: np.ndarray  # (3,)

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        c = np.asarray(self.center_mm, dtype=float)
        rotated = (np.asarray(xyz, float) - c) @ np.asarray(self.rotation).T
        return self.scale * rotated + c + np.asarray(self.translation_mm, float)

    def matrix(self) -> np.ndarray:
        """The 4x4 homogeneous matrix acting on column vectors ``(x, y, z, 1)``."""
        m = np.eye(4)
        sr = self.scale * np.asarray(self.rotation)
        m[:3, :3] = sr
        c = np.asarray(self.center_mm, float)
        m[:3, 3] = c - sr @ c + np.asarray(self.translation_mm, float)
        return m


def euler_to_matrix(angles_rad) -> np.ndarray:
    """``R = Rz(γ)·Ry(β)·Rx(α)`` for ``angles_rad = (α, β, γ)`` (float64, (3, 3))."""
    a, b, g = (float(v) for v in angles_rad)
    ca, sa = math.cos(a), math.sin(a)
    cb, sb = math.cos(b), math.sin(b)
    cg, sg = math.cos(g), math.sin(g)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cg, -sg, 0], [sg, cg, 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_to_euler(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix` for ``|β| < π/2``: angles ``(α, β, γ)``."""
    r = np.asarray(r, float)
    beta = math.asin(float(np.clip(-r[2, 0], -1.0, 1.0)))
    alpha = math.atan2(r[2, 1], r[2, 2])
    gamma = math.atan2(r[1, 0], r[0, 0])
    return np.array([alpha, beta, gamma])


def check_params(params) -> np.ndarray:
    """``params`` as a float64 array of shape ``(..., 21)``, clamped to ``[-1, 1]``."""
    p = np.asarray(params, dtype=float)
    if p.shape[-1] != N_PARAMS:
        raise ValueError(f"shape parameters need {N_PARAMS} values, got shape {p.shape}")
    return np.clip(p, -1.0, 1.0)


def rigid_from_params(
    params, center_mm, ranges: ParamRanges = ParamRanges()
) -> RigidTransform:
    """The rigid (similarity) transform encoded by parameters 14..20."""
    p = check_params(params)
    rot = euler_to_matrix(p[14:17] * ranges.rotation_rad)
    return RigidTransform(
        rotation=rot,
        translation_mm=p[17:20] * ranges.translation_mm,
        scale=float(math.exp(p[20] * ranges.log_scale)),
        center_mm=np.asarray(center_mm, float),
    )


def params_from_rigid(transform: RigidTransform, ranges: ParamRanges = ParamRanges()):
    """Parameters 14..20 (7 values, clamped to ``[-1, 1]``) for a rigid transform.

    The transform's centre must be the SSM centre the parameters refer to.
    """
    ang = matrix_to_euler(transform.rotation) / ranges.rotation_rad
    trans = np.asarray(transform.translation_mm, float) / ranges.translation_mm
    log_s = math.log(transform.scale) / ranges.log_scale
    return np.clip(np.concatenate([ang, trans, [log_s]]), -1.0, 1.0)
