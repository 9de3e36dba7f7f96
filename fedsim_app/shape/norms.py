"""Measure hearts the way CT studies report them and compare with published adult norms.

Volumes are label volumes (what a segmentation holds, precedence applied) on a 1 mm
grid: LV blood pool, LV mass (myocardium label × 1.05 g/mL), RV, LA, RA. Vessel sizes come
from the tube meshes' rings (ring ``k`` is vertices ``k·n_around ..``): the main
pulmonary artery diameter (median over the trunk's rings), the ascending aorta's
(median over the rings past the sinuses) and the centreline length of each vessel (the
extent the label draws).

The norm intervals (``NORMS``) are derived from the figures in
``shared/reference/heart-norms.md`` as stated per row; a population median outside its
interval is flagged. CT figures first; where CT gives only an upper limit, the lower
bound comes from MR end-systolic values as noted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import LABEL_OF

ADULT_BSA_M2 = 1.9
MYOCARDIUM_G_PER_ML = 1.05


@dataclass(frozen=True)
class Norm:
    """An interval a healthy adult population's median should fall in, and its source."""

    key: str
    label: str
    lo: float
    hi: float
    source: str


NORMS: tuple[Norm, ...] = (
    Norm("lv_ml", "LV blood pool (mL)", 33.7 - 12.2, 112.9 + 26.1,
         "CT ES women − 1 SD .. ED men + 1 SD (Kang 2017)"),
    Norm("lv_mass_g", "LV mass (g)", 107.9 - 20.0, 145.0 + 29.1,
         "CT women − 1 SD .. men + 1 SD (Kang 2017)"),
    Norm("rv_ml", "RV (mL)", 56.0 - 18.0, 120.0 * ADULT_BSA_M2,
         "MR ES women − 1 SD (Hudsmith 2005) .. CT 97.5th pct × 1.9 m² (Fuchs 2016)"),
    Norm("la_ml", "LA (mL)", 30.0, 60.0 * ADULT_BSA_M2,
         "~0.45 × MR LA max (Hudsmith 2005) .. CT 97.5th pct × 1.9 m² (Fuchs 2016)"),
    Norm("ra_ml", "RA (mL)", 40.0, 85.0 * ADULT_BSA_M2,
         "~0.5 × LA-like minimum .. CT 97.5th pct × 1.9 m² (Fuchs 2016)"),
    Norm("pa_mm", "main PA diameter (mm)", 25.1 - 2 * 2.8, 25.1 + 2 * 2.8,
         "CT mean ± 2 SD (Truong 2012)"),
    Norm("pa_ao", "PA / ascending aorta", 0.77 - 2 * 0.09, 0.90,
         "CT mean − 2 SD .. upper limit (Truong 2012)"),
    Norm("atria_lv", "(LA + RA) / 2 ÷ LV", 0.8, 3.0,
         "CT atria as large as or larger than the LV blood pool (all phases; Fuchs 2016)"),
    # the great vessels' extent as MM-WHS-style labels draw them (heart-norms.md: the
    # aorta label holds the ascending aorta and part of the arch, the PA label the trunk
    # and the proximal branches, "long structures rather than stubs"): each label is
    # longer than the segment it starts with, ~5 cm in both cases (Gray's Anatomy); the
    # upper bounds are FedSim's (the arch's first half; the branches' first ~3 cm)
    Norm("ao_len_mm", "aorta centreline (mm)", 50.0, 150.0,
         "ascending aorta ~5 cm (Gray's) + part of the arch (MM-WHS labels); upper FedSim's"),
    Norm("pa_len_mm", "PA centreline (mm)", 50.0, 100.0,
         "trunk ~5 cm (Gray's) + proximal branches (MM-WHS labels); upper FedSim's"),
)
EXTRA = (("ao_mm", "ascending aorta diameter (mm)"),)


def _rings(vertices: np.ndarray, n_around: int) -> np.ndarray:
    """Ring vertices (R, n_around, 3) of a capped tube (the two cap centres dropped)."""
    n_rings = (len(vertices) - 2) // n_around
    return vertices[: n_rings * n_around].reshape(n_rings, n_around, 3)


def tube_sizes(vertices: np.ndarray, n_around: int) -> tuple[np.ndarray, float]:
    """Per-ring diameters (R,) mm (twice the mean centre distance) and centreline length."""
    rings = _rings(vertices, n_around)
    centre = rings.mean(1)
    diam = 2 * np.linalg.norm(rings - centre[:, None], axis=2).mean(1)
    return diam, float(np.linalg.norm(np.diff(centre, axis=0), axis=1).sum())


def measure(topology, vertices: np.ndarray, spacing_mm: float = 1.0) -> dict:
    """The measures of one heart (stacked vertices on ``topology``), see module docstring."""
    from fedsim_app.anatomy.templates import TUBES
    from fedsim_app.shape.voxelize import voxelize

    lo, hi = vertices.min(0) - 2, vertices.max(0) + 2
    size = tuple(int(n) for n in np.ceil((hi - lo) / spacing_mm)[::-1] + 1)
    labels = voxelize(topology, vertices, Grid.centered(size, spacing_mm, tuple((lo + hi) / 2)))
    ml = np.bincount(labels.ravel(), minlength=8) * spacing_mm**3 / 1000.0
    out = {
        "lv_ml": ml[LABEL_OF["lv_blood_pool"]],
        "lv_mass_g": ml[LABEL_OF["lv_myocardium"]] * MYOCARDIUM_G_PER_ML,
        "rv_ml": ml[LABEL_OF["rv"]], "la_ml": ml[LABEL_OF["la"]], "ra_ml": ml[LABEL_OF["ra"]],
    }
    pa_d, pa_len = tube_sizes(topology.structure(vertices, "pulmonary_artery")[0],
                              TUBES["pulmonary_artery"][1])
    ao_d, ao_len = tube_sizes(topology.structure(vertices, "aorta")[0], TUBES["aorta"][1])
    # trunk: the PA's first half past its root ring; ascending aorta: past the sinuses
    out["pa_mm"] = float(np.median(pa_d[1 : len(pa_d) // 2]))
    out["ao_mm"] = float(np.median(ao_d[int(0.2 * len(ao_d)) : int(0.4 * len(ao_d))]))
    out["pa_ao"] = out["pa_mm"] / out["ao_mm"]
    out["atria_lv"] = (out["la_ml"] + out["ra_ml"]) / 2 / max(out["lv_ml"], 1e-9)
    out["ao_len_mm"], out["pa_len_mm"] = ao_len, pa_len
    return {k: float(v) for k, v in out.items()}


def summarise(rows: list[dict]) -> dict:
    """``{key: (median, 5th, 95th percentile)}`` over measured hearts."""
    keys = rows[0].keys()
    return {k: tuple(float(np.percentile([r[k] for r in rows], q)) for q in (50, 5, 95))
            for k in keys}


def report_table(columns: dict[str, dict]) -> str:
    """Text table: each measure, each column's median [5th–95th], the norm, in range."""
    names = list(columns)
    head = f"{'measure':<30}" + "".join(f"{n:>24}" for n in names) + "  CT norm interval"
    lines = [head, "-" * len(head)]

    def cell(stats):
        med, p5, p95 = stats
        return f"{med:8.1f} [{p5:6.1f}-{p95:6.1f}]" if med >= 2 else \
            f"{med:8.2f} [{p5:6.2f}-{p95:6.2f}]"

    for norm in NORMS:
        row = f"{norm.label:<30}" + "".join(f"{cell(columns[n][norm.key]):>24}" for n in names)
        flags = ["ok" if norm.lo <= columns[n][norm.key][0] <= norm.hi else "OUT"
                 for n in names]
        lines.append(f"{row}  {norm.lo:.2f}-{norm.hi:.2f} ({'/'.join(flags)}; {norm.source})")
    for key, label in EXTRA:
        lines.append(f"{label:<30}" + "".join(f"{cell(columns[n][key]):>24}" for n in names)
                     + "  (no norm; reported)")
    return "\n".join(lines)


def out_of_range(stats: dict) -> list[str]:
    """Keys whose median lies outside the norm interval."""
    return [n.key for n in NORMS if not n.lo <= stats[n.key][0] <= n.hi]
