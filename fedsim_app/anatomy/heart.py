"""Build the seven meshes of one heart from a :class:`HeartParams` record (deterministic).

Construction frame (before the per-heart rotation): the LV long axis ``u`` runs from the
base toward the apex, left, anterior and inferior; ``s`` is the short-axis direction
from the LV axis to the septum (toward the RV, anterior-right) and ``e = s × u`` points
superior-anterior-left. The LV base (valve plane) centre sits at the origin; the heart
is re-centred on the origin at the end. Template sphere axes map to (s, e, u).
"""

from __future__ import annotations

import numpy as np

from fedsim_app.anatomy.atria import LA_BUMPS, RA_BUMPS, StarAtrium, push_apart
from fedsim_app.anatomy.heart_checks import untangle
from fedsim_app.anatomy.meshes import HeartMeshes
from fedsim_app.anatomy.params import HeartParams, filling_fraction
from fedsim_app.anatomy.shapes import (
    bump,
    disk_to_square,
    ellipsoid_radius,
    plane_radius,
    rotation_matrix,
    smoothstep,
    softmin,
)
from fedsim_app.anatomy.templates import TUBES, icosphere, signed_volume, template_topology
from fedsim_app.anatomy.vessels import Tube, clear_of

_U = np.array([-0.6, 0.5, -0.6]) / np.linalg.norm([-0.6, 0.5, -0.6])
_S = np.array([0.75, 0.75, 0.0]) - (np.array([0.75, 0.75, 0.0]) @ _U) * _U
_S /= np.linalg.norm(_S)
_E = np.cross(_S, _U)
FRAME = np.stack([_S, _E, _U])  # rows: s, e, u; local (s, e, u) -> world is  local @ FRAME

_GAP_MM = 0.6  # clearance kept between surfaces that touch


def _vol_ml(v: np.ndarray) -> float:
    """Enclosed volume (mL) of a mesh on the sphere template (chambers only)."""
    return abs(signed_volume(v, template_topology().faces["lv_blood_pool"])) / 1000.0


class _LV:
    """Truncated ellipsoid (cavity or epicardium) about the point ``hc`` on the axis."""

    def __init__(self, a_s, a_e, length, hc, h_base):
        self.a_s, self.a_e, self.length, self.hc, self.h_base = a_s, a_e, length, hc, h_base

    def radius(self, d_local: np.ndarray) -> np.ndarray:
        # ellipsoid centred at h = hc: semi-axes (a_s, a_e) across, length - hc along u
        r_ell = ellipsoid_radius(d_local, np.array([self.a_s, self.a_e, self.length - self.hc]))
        r_base = plane_radius(d_local, np.array([0.0, 0.0, -1.0]), self.hc - self.h_base)
        return softmin(r_ell, r_base)

    def vertices_local(self, d_local: np.ndarray) -> np.ndarray:
        return np.array([0.0, 0.0, self.hc]) + self.radius(d_local)[:, None] * d_local

    def rho(self, h: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Cylindrical radius of the (unrounded) ellipsoid at height h, angle theta."""
        z = (np.maximum(h, 0.0) - self.hc) / (self.length - self.hc)
        across = np.sqrt(np.maximum(1.0 - z * z, 0.02))
        return across / np.sqrt((np.cos(theta) / self.a_s) ** 2 + (np.sin(theta) / self.a_e) ** 2)


def _lv(p: HeartParams, d: np.ndarray):
    """LV cavity and epicardium (local coordinates) at the record's phase."""
    v_es = p.lv_edv_ml * (1.0 - p.lv_ef)
    v_now = v_es + filling_fraction(p.phase) * (p.lv_edv_ml - v_es)
    # end-diastole: size the cavity for the EDV at the record's sphericity (cavity length
    # / diameter ~1.7 in adults; LV end-diastolic diameter 42-58 mm, Lang et al. 2015)
    a = 25.0 * p.size_scale
    for _ in range(4):
        cav = _LV(a, a * p.lv_ellipticity, 2 * a * p.lv_sphericity, 0.5 * a, -1.0)
        a *= (p.lv_edv_ml / _vol_ml(cav.vertices_local(d))) ** (1 / 3)
    cav_ed = _LV(a, a * p.lv_ellipticity, 2 * a * p.lv_sphericity, 0.5 * a, -1.0)
    t = p.lv_wall_mm
    epi_ed = _LV(a + t, (a * p.lv_ellipticity) + t, cav_ed.length + 0.8 * t, cav_ed.hc, 0.0)
    myo_ml = _vol_ml(epi_ed.vertices_local(d)) - p.lv_edv_ml
    # the base descends toward the apex in systole: mitral annular plane systolic
    # excursion ~12-15 mm of a ~90 mm cavity (Lang et al. 2015), ~12 % shortening
    length = cav_ed.length * (1.0 - 0.12 * (1.0 - filling_fraction(p.phase)))
    for _ in range(4):
        cav = _LV(a, a * p.lv_ellipticity, length, 0.5 * a * length / cav_ed.length, -1.0)
        a *= np.sqrt(v_now / _vol_ml(cav.vertices_local(d)))
    cav = _LV(a, a * p.lv_ellipticity, length, 0.5 * a * length / cav_ed.length, -1.0)
    # wall thickens as the cavity shrinks: solve for the thickness that keeps myo_ml
    v_cav = _vol_ml(cav.vertices_local(d))
    for _ in range(5):
        epi = _LV(cav.a_s + t, cav.a_e + t, cav.length + 0.8 * t, cav.hc, 0.0)
        v_epi = _vol_ml(epi.vertices_local(d))
        area_ml_per_mm = 4.0 * np.pi * (3 * v_epi * 1000 / (4 * np.pi)) ** (2 / 3) / 1000
        t += (myo_ml - (v_epi - v_cav)) / area_ml_per_mm
    epi = _LV(cav.a_s + t, cav.a_e + t, cav.length + 0.8 * t, cav.hc, 0.0)
    return cav, epi, t


def _rv_local(p: HeartParams, sphere: np.ndarray, epi: _LV, width: float) -> np.ndarray:
    """The RV as a pillow laid on the septum: inner face on the epicardium, crescent
    cross-section, outflow tract rising above the base at the superior end."""
    a, b, c = sphere[:, 0], sphere[:, 1], sphere[:, 2]
    sq_a, sq_c = disk_to_square(a, c)  # footprint coordinates in [-1, 1]²
    top = (1.0 - sq_c) / 2.0  # 0 at the base edge, 1 at the apical edge
    span = np.deg2rad(p.rv_span_deg) * (1.0 - 0.25 * top)
    theta = sq_a * span  # sq_a = +1: superior-anterior (outflow) end
    s = p.size_scale
    rvot = smoothstep((sq_a - 0.25) / 0.6)
    h_top = 1.0 - 14.0 * s * rvot
    h_bot = 0.8 * epi.length * (1.0 - 0.25 * sq_a**2)
    h = h_top + top * (h_bot - h_top)
    thick = width * (1.0 - 0.45 * top) * (1.0 + 0.3 * rvot)
    # b runs across the pillow between -half and +half; the thickness profile half**pw is
    # elliptic (pw = 1) at the apex and the crescent tips and blunt (pw -> 0.3) along
    # the base edge, where the RV opens onto the tricuspid and pulmonary valves
    half = np.sqrt(np.maximum(1.0 - a * a - c * c, 0.0))
    across = np.clip(b / np.maximum(half, 1e-12), -1.0, 1.0)
    pw = 1.0 - 0.7 * smoothstep((sq_c - 0.2) / 0.8)
    rho = epi.rho(h, theta) + _GAP_MM + thick * half**pw * (across + 1.0)
    local = np.stack([rho * np.cos(theta), rho * np.sin(theta), h], -1)
    # the outflow tract leans left and forward as it rises (the pulmonary valve sits
    # anterior, superior and left of the aortic valve): shear above the base
    left = FRAME @ np.array([-0.8, 0.8, 0.0])
    lift = np.maximum(-h, 0.0)
    return local + (0.6 * lift**2 / (14.0 * s))[:, None] * left[None, :]


def _rv(p: HeartParams, sphere: np.ndarray, epi: _LV) -> np.ndarray:
    v_es = p.rv_edv_ml * (1.0 - p.rv_ef)
    v_now = v_es + filling_fraction(p.phase) * (p.rv_edv_ml - v_es)
    width = 10.0 * p.size_scale
    for _ in range(5):
        vol = _vol_ml(_rv_local(p, sphere, epi, width))
        width *= (v_now / vol) ** 0.9
    return _rv_local(p, sphere, epi, width)


def _size_for(target_ml: float, build) -> float:
    """The size factor ``k`` for which the mesh ``build(k)`` encloses ``target_ml``."""
    # secant on log(volume) against log(k); the floor plane makes it not exactly cubic
    lk0, lv0 = 0.0, np.log(_vol_ml(build(1.0)))
    lk1 = (np.log(target_ml) - lv0) / 3.0
    for _ in range(5):
        lv1 = np.log(_vol_ml(build(np.exp(lk1))))
        if abs(lv1 - np.log(target_ml)) < 1e-4 or lk1 == lk0:
            break
        slope = (lv1 - lv0) / (lk1 - lk0)
        lk0, lv0 = lk1, lv1
        lk1 = lk1 + (np.log(target_ml) - lv1) / max(slope, 0.5)
    return float(np.exp(lk1))


def _world(local: np.ndarray) -> np.ndarray:
    return local @ FRAME


def _polar(rho: float, theta_deg: float, h: float) -> np.ndarray:
    t = np.deg2rad(theta_deg)
    return _world(np.array([rho * np.cos(t), rho * np.sin(t), h]))


def build_heart(params: HeartParams) -> HeartMeshes:
    """The seven meshes of the heart that ``params`` describes (deterministic).

    Examples
    --------
    >>> from fedsim_app.anatomy import sample_heart_params
    >>> heart = build_heart(sample_heart_params("adult", 0))
    >>> sorted(heart.volumes_ml())[0]
    'aorta'
    """
    p = params
    sc = p.size_scale
    sphere = icosphere()[0]  # (642, 3) unit directions
    # (s, e, u) is left-handed: mirror the template so the winding stays outward
    mirrored = sphere * np.array([1.0, -1.0, 1.0])
    cav, epi, _ = _lv(p, mirrored)
    cav_local = cav.vertices_local(mirrored)
    rv_local = _rv(p, mirrored, epi)
    if p.vsd_diameter_mm > 0:
        cav_local = _with_vsd(p, cav, epi, rv_local, mirrored)
    out = {
        "lv_blood_pool": _world(cav_local),
        "lv_myocardium": _world(epi.vertices_local(mirrored)),
        "rv": _world(rv_local),
    }
    rb = float(cav.rho(0.0, 0.0))
    aorta, pa = _great_vessels(p, rb, out["rv"])
    out["rv"] = _valve_plane_under(out["rv"], pa)
    la, ra = _atria(p, sphere, epi, rb, aorta)
    out["la"], out["ra"] = la.vertices(sphere), ra.vertices(sphere)
    out["aorta"] = aorta.vertices(TUBES["aorta"][1])
    out["pulmonary_artery"] = pa.vertices(TUBES["pulmonary_artery"][1])

    # pose: centre on the origin (the blood pool, which a VSD changes, left out), rotate,
    # warp smoothly, shift
    centre = np.concatenate([v for n, v in out.items() if n != "lv_blood_pool"]).mean(0)
    rot = rotation_matrix(np.deg2rad(np.asarray(p.rotation_deg)))
    for name, v in out.items():
        v = (v - centre) @ rot.T
        # the warp's coefficients are mm for the adult heart: scaled with the heart, an
        # infant's heart (a third of the size) gets the same relative bend, not three
        # times it (which bent a dilated trunk tighter than its radius)
        out[name] = _warp(v, tuple(c * sc for c in p.warp_mm), 60.0 * sc,
                          _vol_ml(v) if name in _CHAMBERS else None)
        out[name] += np.asarray(p.offset_mm)
    return HeartMeshes(out, params=p)


_CHAMBERS = ("lv_blood_pool", "lv_myocardium", "rv", "la", "ra")


def _perp_u(v: np.ndarray) -> np.ndarray:
    """``v`` without its long-axis component (moves that keep a valve-plane contact)."""
    v = v - (v @ _U) * _U
    return v / np.linalg.norm(v)


def _atria(p: HeartParams, sphere: np.ndarray, epi: _LV, rb: float, aorta: Tube):
    """LA over the mitral valve (posterior), RA over the tricuspid valve (right); each
    sized to its volume at the record's phase (largest at end-systole)."""
    sc = p.size_scale
    fill = filling_fraction(p.phase)
    la_ml = p.la_max_ml - fill * (p.la_max_ml - p.la_min_ml)
    ra_ml = p.ra_max_ml - fill * (p.ra_max_ml - p.ra_min_ml)
    mitral = _polar(0.3 * rb, 200.0, 0.0)
    # adult LA: antero-posterior diameter 27-40 mm, wider left-right and cranio-caudally
    # (Lang et al. 2015); the semi-axes are rescaled to the volume anyway
    la_axes = np.array([30.0, 19.0, 24.0]) * np.asarray(p.la_aspect) * sc

    def la_of(k: float) -> StarAtrium:
        centre = mitral - _U * (0.75 * 22.0 * k * sc) + np.array([0.0, -3.0, 0.0]) * sc
        return StarAtrium(centre, la_axes * k, -1.3, _U, LA_BUMPS)

    la = la_of(_size_for(la_ml, lambda k: la_of(k).vertices(sphere)))
    # the aortic root sits in front of the LA and to the left of the RA: keep them clear
    ao_vertices = aorta.vertices(TUBES["aorta"][1])
    la = push_apart(
        la, sphere, ao_vertices, aorta.depth, _perp_u(la.centre - aorta.line[0]), 0.3
    )
    tricuspid = _polar(float(epi.rho(0.0, np.deg2rad(-40.0))) + 10.0 * sc, -40.0, 0.0)
    ra_axes = np.array([24.0, 24.0, 29.0]) * np.asarray(p.ra_aspect) * sc

    def ra_of(k: float) -> StarAtrium:
        centre = tricuspid - _U * (0.75 * 22.0 * k * sc) + np.array([-10.0, -8.0, 0.0]) * sc
        return StarAtrium(centre, ra_axes * k, 0.4, _U, RA_BUMPS)

    ra = ra_of(_size_for(ra_ml, lambda k: ra_of(k).vertices(sphere)))
    # the interatrial septum: slide the RA against the LA, then back until they only touch
    toward_ra = _perp_u(ra.centre - la.centre)
    ra = ra.moved(-12.0 * sc * toward_ra)
    ra = push_apart(ra, sphere, la.vertices(sphere), la.penetration, toward_ra, 0.3)
    ra = push_apart(
        ra, sphere, ao_vertices, aorta.depth, _perp_u(ra.centre - aorta.line[0]), 0.3
    )
    return la, ra


def _great_vessels(p: HeartParams, rb: float, rv_w: np.ndarray) -> tuple[Tube, Tube]:
    """Aorta (root, ascending, start of the arch) from the aortic valve and pulmonary
    trunk from the top of the RV outflow tract, crossing in front of the aorta."""
    sc = p.size_scale
    r_ao = p.aorta_diameter_mm / 2.0
    valve = _polar(0.4 * rb, 30.0, 0.5)
    up = -_U + np.array([0.0, 0.25, 1.2])
    up /= np.linalg.norm(up)
    q = [valve, valve + 22 * sc * up]
    q.append(q[-1] + 24 * sc * (up + np.array([0.0, 0.1, 0.2])))
    turn = rotation_matrix(np.array([0.0, 0.0, np.deg2rad(p.arch_turn_deg)]))
    q.append(q[-1] + sc * turn @ np.array([-8.0, -14.0, 20.0]))
    q.append(q[-1] + sc * turn @ np.array([-16.0, -26.0, 4.0]))
    # annulus (~0.8 of the sinus diameter), sinuses of Valsalva, an ascending aorta ~0.9
    # of the sinuses (PA / ascending aorta 0.77 in CT, Truong et al. 2012) and a gently
    # tapering arch (Lang et al. 2015, aortic root)
    aorta = Tube.through(
        q,
        TUBES["aorta"][0],
        lambda f: r_ao * np.where(
            f == 0, 0.8, 0.92 + 0.08 * np.exp(-(((f - 0.1) / 0.08) ** 2)) - 0.1 * f
        ),
    )

    hh = rv_w @ _U
    tip = rv_w[hh < hh.min() + 6.0 * sc].mean(0)
    r_pa = p.pa_diameter_mm / 2.0
    # leave along the outflow tract's own axis, starting just inside its top surface
    near = np.linalg.norm(rv_w - tip, axis=1) < 25.0 * sc
    axis = tip - rv_w[near].mean(0)
    axis = axis / np.linalg.norm(axis) + np.array([0.0, 0.0, 0.3])
    axis /= np.linalg.norm(axis)
    rel = rv_w - tip
    along = rel @ axis
    off_axis = np.linalg.norm(rel - along[:, None] * axis, axis=1)
    exit_mm = along[off_axis < 1.05 * r_pa].max(initial=0.0)
    start = tip + (exit_mm - 0.5 * sc) * axis
    # a dilated trunk bends more gently (its radius must stay below the bend radius)
    bend = sc * max(1.0, r_pa / (13.0 * sc)) ** 0.75
    q = [start, start + 10.0 * bend * axis]
    turn = rotation_matrix(np.array([0.0, 0.0, np.deg2rad(p.pa_turn_deg)]))
    q.append(q[-1] + bend * turn @ np.array([-10.0, -12.0, 16.0]))
    q.append(q[-1] + bend * turn @ np.array([-8.0, -18.0, 8.0]))
    # the bifurcation lies under the aortic arch: flatten the rise if the trunk would
    # reach above it
    z_lim = aorta.line[:, 2].max() - 0.5 * r_ao - 0.8 * r_pa
    rise = q[3][2] - q[1][2]
    if q[3][2] > z_lim and rise > 0:
        f = max((z_lim - q[1][2]) / rise, 0.2)
        q[2][2] = q[1][2] + f * (q[2][2] - q[1][2])
        q[3][2] = q[1][2] + f * rise
    # MM-WHS-style labels hold the trunk and the proximal branches (heart-norms.md), not
    # a stub: the one tube of the template runs on past the bifurcation into the left
    # branch, which continues the trunk's course (left and back, to arch over the left
    # bronchus) while the right one leaves at a right angle behind the aorta
    q.append(q[-1] + bend * turn @ np.array([-13.0, -15.0, 2.0]))
    trunk = _polyline_mm(q[:4]) / _polyline_mm(q)  # fraction of the length that is trunk
    pa = Tube.through(
        q,
        TUBES["pulmonary_artery"][0],
        # the left branch narrows to about three quarters of the trunk's diameter
        lambda f: r_pa * np.where(
            f == 0, 0.85,
            np.where(f <= trunk, 0.95 + 0.05 * np.sin(np.pi * f / trunk),
                     0.95 - 0.2 * (f - trunk) / (1.0 - trunk)),
        ),
    )
    pa = clear_of(pa, aorta, _GAP_MM)
    return aorta, pa


def _polyline_mm(points: list[np.ndarray]) -> float:
    """Length (mm) of the polyline through ``points``."""
    return float(np.linalg.norm(np.diff(np.array(points), axis=0), axis=1).sum())


def _valve_plane_under(rv_w: np.ndarray, pa: Tube, soft_mm: float = 1.0) -> np.ndarray:
    """Press the top of the RV outflow tract under the pulmonary valve plane where the
    trunk sits on it, so the trunk does not cut into the RV.

    Vertices move only along the trunk's axis, toward the ventricle, to a soft minimum
    of their height and the plane (0.3 mm under it), fully within the trunk's radius and
    fading out by 1.6 radii. The new height is a weighted mean of two increasing
    functions of the old one, so the map is one-to-one: two sheets of the thin outflow
    tract never land on one plane (projecting onto the plane, as before, made the RV
    cross itself in half the hearts); a patch still crossing is smoothed back
    (:func:`~fedsim_app.anatomy.heart_checks.untangle`).
    """
    origin = pa.line[0]
    axis = pa.line[1] - pa.line[0]
    axis /= np.linalg.norm(axis)
    rel = rv_w - origin
    along = rel @ axis
    off_axis = np.linalg.norm(rel - along[:, None] * axis, axis=1)
    r0 = pa.radii[0]
    weight = 1.0 - smoothstep((off_axis - 1.0 * r0) / (0.6 * r0))
    x = (along + 0.3) / soft_mm
    # soft minimum of (along, -0.3): -0.3 - soft·log(1 + exp(-x)), overflow-safe
    soft_min = -0.3 - soft_mm * (np.maximum(-x, 0.0) + np.log1p(np.exp(-np.abs(x))))
    pressed = rv_w + (weight * (soft_min - along))[:, None] * axis[None, :]
    # where the outflow tract's tip rose far into the trunk, its pressed triangles can
    # still cross: smooth the move back there (the overlap left is the trunk's label)
    return untangle(rv_w, pressed, template_topology().faces["rv"])


def _with_vsd(p, cav: _LV, epi: _LV, rv_local: np.ndarray, d: np.ndarray) -> np.ndarray:
    """LV cavity with a channel through the septum that reaches into the RV."""
    h_rv = rv_local[:, 2]
    h_vsd = 2.0 + p.vsd_height_frac * 0.5 * (h_rv.max() - 2.0)
    target = np.array([float(epi.rho(h_vsd, 0.0)) + _GAP_MM + 2.0, 0.0, h_vsd])
    centre = np.array([0.0, 0.0, cav.hc])
    axis = (target - centre) / np.linalg.norm(target - centre)
    r = cav.radius(d)
    reach = np.linalg.norm(target - centre)
    height = reach / float(cav.radius(axis[None, :])[0]) - 1.0
    width = np.arctan2(p.vsd_diameter_mm / 2.0, reach)
    r = np.maximum(r, r * bump(d, axis, height, width))
    return centre + r[:, None] * d


def _warp(
    points: np.ndarray, coef: tuple[float, ...], scale_mm: float, keep_ml: float | None = None
) -> np.ndarray:
    """Smooth divergence-free quadratic warp: displacement component i is a combination
    of the three quadratic monomials free of x_i (q = x / scale_mm), so volumes change
    only to second order; ``keep_ml`` then rescales about the centroid to restore the
    volume exactly (a sub-millimetre adjustment)."""
    q = points / scale_mm
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    terms = [
        np.stack([y * y, z * z, y * z], -1),
        np.stack([z * z, x * x, z * x], -1),
        np.stack([x * x, y * y, x * y], -1),
    ]  # (N, 3) per output axis
    c = np.asarray(coef, dtype=float).reshape(3, 3)
    out = points + np.stack([terms[i] @ c[i] for i in range(3)], -1)
    if keep_ml is not None:
        mid = out.mean(0)
        out = mid + (out - mid) * (keep_ml / _vol_ml(out)) ** (1 / 3)
    return out
