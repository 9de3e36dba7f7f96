"""Heart parameter records and the populations they are drawn from.

Randomness lives here only: :func:`sample_heart_params` draws a :class:`HeartParams`
record from a seeded generator, and :func:`fedsim_app.anatomy.heart.build_heart` turns
the record into meshes deterministically.

Reference values (adults) and where they come from:

- LV end-diastolic volume ~140 mL (CMR SSFP, sexes pooled ~130-160 mL), LV ejection
  fraction 55-70 %, RV end-diastolic volume ~155 mL, RV ejection fraction 50-65 %:
  Kawel-Boehm et al., "Normal values for cardiovascular magnetic resonance in adults and
  children", JCMR 17:29 (2015).
- LV wall thickness 6-10 mm at end-diastole; LA volume 16-34 mL/m² (max, end-systole);
  aortic root at the sinuses 30-34 mm (men), 27-31 mm (women): Lang et al., ASE/EACVI
  chamber quantification guidelines, JASE 28:1-39 (2015).
- RA maximal volume ~60-100 mL (CMR): Kawel-Boehm et al. 2015 (Maceira et al. 2013).
- Main pulmonary artery diameter ~24 mm, upper normal ~29 mm (CT): Truong et al., AJR
  200:W161 (2013, Framingham).
- Calibrated against CT (``shared/reference/heart-norms.md``; ``fedsim ssm sample
  --population adult --n 200 --report``): LV EDV 113 ± 26 / 98 ± 21 mL (men / women,
  Kang et al. 2017) instead of the larger MR values; atria as large as the LV blood pool
  (Fuchs et al. 2016 upper limits RA 85, LA 60 mL/m²); main PA 25.1 ± 2.8 mm and PA /
  ascending aorta 0.77 ± 0.09 (Truong et al. 2012).
- Children: ventricular volumes scale with BSA^1.3 (Buechel et al., JCMR 11:19, 2009);
  vessel diameters with BSA^0.5 (Pettersen et al., JASE 21:922, 2008); height and weight
  by age from the WHO/CDC growth charts (50th centile, sexes averaged).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

POPULATIONS: tuple[str, ...] = ("atlas", "adult", "chd-l", "chd-m")
ATLAS_SIZE = 20
_ATLAS_SEED = 20_200_520  # fixed: the shipped SSM is built from these 20 hearts

ADULT_BSA_M2 = 1.9  # the reference body for the adult values above
# WHO/CDC 50th centile, sexes averaged: age (years), height (cm), weight (kg).
_GROWTH = np.array(
    [
        [0.0, 50.0, 3.4], [0.083, 55.0, 4.5], [0.5, 67.0, 7.6], [1.0, 75.0, 9.6],
        [2.0, 87.0, 12.2], [4.0, 102.0, 16.3], [6.0, 115.0, 20.7], [8.0, 127.0, 25.8],
        [10.0, 138.0, 32.0], [12.0, 150.0, 40.5], [14.0, 163.0, 50.5], [16.0, 170.0, 59.0],
        [18.0, 173.0, 64.0], [21.0, 175.0, 68.0], [90.0, 173.0, 75.0],
    ]
)  # fmt: skip


def filling_fraction(phase: float) -> float:
    """Fraction of the stroke volume back in the ventricles at ``phase`` (0 end-systole,
    1 end-diastole); the atria hold the complement of their reservoir volume.

    Diastole in three steps: rapid early filling (~70 % of the stroke volume), diastasis,
    and the atrial kick (~30 %) at its end (e.g. Nagueh et al., ASE/EACVI diastolic
    function recommendations, JASE 29:277, 2016), so the atria stay large through the
    mid-diastolic phases that cardiac CT is usually reconstructed at.
    """
    def step(x: float) -> float:
        x = min(max(x, 0.0), 1.0)
        return x * x * (3.0 - 2.0 * x)

    return 0.7 * step(phase / 0.45) + 0.3 * step((phase - 0.8) / 0.2)


def height_cm_for_age(age_years: float) -> float:
    """Body height (cm) of a 50th-centile body of that age."""
    return float(np.interp(age_years, _GROWTH[:, 0], _GROWTH[:, 1]))


def bsa_for_age(age_years: float) -> float:
    """Body surface area (m², Mosteller) of a 50th-centile body of that age."""
    height = np.interp(age_years, _GROWTH[:, 0], _GROWTH[:, 1])
    weight = np.interp(age_years, _GROWTH[:, 0], _GROWTH[:, 2])
    return float(np.sqrt(height * weight / 3600.0))


@dataclass(frozen=True)
class HeartParams:
    """Everything that makes one heart different from another (see module docstring for
    the reference values). Volumes are in mL, lengths in mm, angles in degrees.

    ``phase`` is the cardiac phase: 0 end-systole (ventricles smallest, atria largest),
    1 end-diastole. ``vsd_diameter_mm > 0`` opens a ventricular septal defect (a channel
    of LV blood through the septum to the RV), a shape the atlas SSM cannot express.
    """

    population: str
    seed: int
    age_years: float
    bsa_m2: float
    phase: float
    lv_edv_ml: float
    lv_ef: float
    lv_wall_mm: float  # at end-diastole; the myocardial volume is kept through the cycle
    lv_sphericity: float  # cavity length / diameter at end-diastole (adult ~1.7)
    lv_ellipticity: float  # short-axis diameter ratio (free-wall direction / septal)
    rv_edv_ml: float
    rv_ef: float
    rv_span_deg: float  # half the angle the RV crescent wraps around the LV
    la_max_ml: float  # at end-systole
    la_min_ml: float  # at end-diastole (after atrial contraction)
    ra_max_ml: float
    ra_min_ml: float
    la_aspect: tuple[float, float, float]  # (left-right, antero-posterior, cranio-caudal)
    ra_aspect: tuple[float, float, float]
    aorta_diameter_mm: float  # at the sinuses of Valsalva
    pa_diameter_mm: float  # main pulmonary artery trunk
    rotation_deg: tuple[float, float, float]  # rotation vector applied to the whole heart
    warp_mm: tuple[float, ...]  # 9 coefficients of a smooth quadratic warp
    offset_mm: tuple[float, float, float]
    vsd_diameter_mm: float = 0.0
    vsd_height_frac: float = 0.35  # 0 at the top of the RV body, 1 at its bottom
    arch_turn_deg: float = 0.0  # turn of the arch / pulmonary trunk about the vertical
    pa_turn_deg: float = 0.0

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> HeartParams:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown HeartParams fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def size_scale(self) -> float:
        """Length scale of this body's heart relative to the adult reference (1.0)."""
        return float((self.bsa_m2 / ADULT_BSA_M2) ** (1.3 / 3.0))


def _rng(rng: np.random.Generator | int, population: str) -> tuple[np.random.Generator, int]:
    if isinstance(rng, np.random.Generator):
        return rng, -1
    # the population enters the stream so that seed k of two populations is unrelated
    return np.random.default_rng([int(rng), POPULATIONS.index(population)]), int(rng)


def _clipped_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float):
    return float(np.clip(rng.normal(mean, sd), lo, hi))


def sample_heart_params(population: str, rng: np.random.Generator | int) -> HeartParams:
    """Draw one heart of a population.

    Parameters
    ----------
    population : one of :data:`POPULATIONS`: ``atlas`` (healthy adults, diastolic CT,
        the SSM training set), ``adult``, ``chd-l`` (paediatric left-sided lesions: small
        LV, narrow aorta), ``chd-m`` (paediatric right-sided: dilated RV and PA).
    rng : a generator, or an int seed (recorded in ``params.seed``).

    Examples
    --------
    >>> p = sample_heart_params("chd-m", 3)
    >>> p.population, p.seed
    ('chd-m', 3)
    """
    if population not in POPULATIONS:
        raise ValueError(f"unknown population {population!r}; choose one of {POPULATIONS}")
    g, seed = _rng(rng, population)
    n = _clipped_normal
    paediatric = population.startswith("chd")
    if paediatric:
        # log-uniform age 1 month .. 21 years (the CT34 cohorts' range)
        age = float(np.exp(g.uniform(np.log(1.0 / 12.0), np.log(21.0))))
        bsa = bsa_for_age(age) * n(g, 1.0, 0.08, 0.8, 1.2)
    else:
        age = float(g.uniform(40.0, 75.0) if population == "atlas" else g.uniform(21.0, 80.0))
        bsa = n(g, ADULT_BSA_M2, 0.18, 1.5, 2.4)
    vol = (bsa / ADULT_BSA_M2) ** 1.3  # ventricular/atrial volume scale (Buechel 2009)
    dia = (bsa / ADULT_BSA_M2) ** 0.5  # vessel diameter scale (Pettersen 2008)
    wall = (bsa / ADULT_BSA_M2) ** 0.4

    phase = float(g.uniform(0.6, 1.0) if population == "atlas" else g.uniform(0.0, 1.0))
    lv_scale = rv_scale = la_scale = ra_scale = ao_scale = pa_scale = 1.0
    lv_ef, rv_ef = n(g, 0.62, 0.035, 0.55, 0.70), n(g, 0.58, 0.035, 0.50, 0.66)
    sphericity = n(g, 1.75, 0.08, 1.55, 1.95)
    vsd = 0.0
    if population == "chd-l":
        lv_scale = g.uniform(0.35, 0.8)
        ao_scale = g.uniform(0.45, 0.8)
        rv_scale = g.uniform(1.0, 1.45)
        la_scale = g.uniform(0.8, 1.3)
        lv_ef = n(g, 0.55, 0.06, 0.40, 0.68)
        sphericity = n(g, 1.6, 0.1, 1.35, 1.85)
    elif population == "chd-m":
        rv_scale = g.uniform(1.4, 2.3)
        pa_scale = g.uniform(1.3, 1.9)
        ra_scale = g.uniform(1.1, 1.6)
        lv_scale = g.uniform(0.8, 1.05)
        ao_scale = g.uniform(0.95, 1.25)  # overriding aorta in tetralogy-like hearts
        rv_ef = n(g, 0.47, 0.05, 0.35, 0.58)
    if paediatric and g.uniform() < 0.5:
        # restrictive to unrestrictive: 30-90 % of the normal aortic annulus for the body
        vsd = float(min(g.uniform(0.3, 0.9) * 25.0 * dia, 15.0))

    # CT norms (shared/reference/heart-norms.md): LV EDV 113 ± 26 (men) / 98 ± 21 (women)
    # mL; atria as large as or larger than the LV blood pool, RA up to ~160 and LA up to
    # ~115 mL at their largest (97.5th percentiles × 1.9 m²); MR LA max 89-103 mL. The
    # paediatric families keep their CMR-referenced values (Buechel 2009 scaling is CMR).
    if paediatric:
        lv_edv = n(g, 140.0, 20.0, 95.0, 200.0) * vol * lv_scale
        la_max = n(g, 65.0, 10.0, 40.0, 95.0) * vol * la_scale
        ra_max = n(g, 70.0, 12.0, 45.0, 105.0) * vol * ra_scale
    else:
        lv_edv = n(g, 106.0, 20.0, 70.0, 160.0) * vol * lv_scale
        la_max = n(g, 88.0, 14.0, 55.0, 125.0) * vol * la_scale
        ra_max = n(g, 105.0, 18.0, 65.0, 155.0) * vol * ra_scale
    return HeartParams(
        population=population,
        seed=seed,
        age_years=age,
        bsa_m2=float(bsa),
        phase=phase,
        lv_edv_ml=float(lv_edv),
        lv_ef=lv_ef,
        lv_wall_mm=n(g, 9.0, 0.8, 7.0, 11.0) * wall,
        lv_sphericity=sphericity,
        lv_ellipticity=n(g, 1.0, 0.05, 0.88, 1.12),
        rv_edv_ml=float(n(g, 155.0, 22.0, 110.0, 220.0) * vol * rv_scale),
        rv_ef=rv_ef,
        rv_span_deg=n(g, 100.0, 5.0, 88.0, 112.0),
        la_max_ml=float(la_max),
        la_min_ml=float(la_max * n(g, 0.45, 0.05, 0.35, 0.6)),
        ra_max_ml=float(ra_max),
        ra_min_ml=float(ra_max * n(g, 0.5, 0.05, 0.4, 0.65)),
        la_aspect=tuple(n(g, 1.0, 0.07, 0.85, 1.15) for _ in range(3)),
        ra_aspect=tuple(n(g, 1.0, 0.07, 0.85, 1.15) for _ in range(3)),
        aorta_diameter_mm=n(g, 32.0, 2.5, 26.0, 38.0) * dia * ao_scale,
        pa_diameter_mm=n(g, 24.0, 2.0, 19.0, 29.0) * dia * pa_scale,
        rotation_deg=tuple(n(g, 0.0, 5.0, -12.0, 12.0) for _ in range(3)),
        warp_mm=tuple(n(g, 0.0, 1.5, -4.0, 4.0) for _ in range(9)),
        offset_mm=tuple(n(g, 0.0, 2.0, -5.0, 5.0) for _ in range(3)),
        vsd_diameter_mm=vsd,
        vsd_height_frac=float(g.uniform(0.2, 0.5)),
        arch_turn_deg=n(g, 0.0, 8.0, -20.0, 20.0),
        pa_turn_deg=n(g, 0.0, 8.0, -20.0, 20.0),
    )


def atlas_params(i: int) -> HeartParams:
    """Heart ``i`` (0 ≤ i < :data:`ATLAS_SIZE`) of the fixed adult atlas the SSM is built
    from; the same record on every machine."""
    if not 0 <= i < ATLAS_SIZE:
        raise ValueError(f"atlas index must be in [0, {ATLAS_SIZE}), got {i}")
    return sample_heart_params("atlas", _ATLAS_SEED + i)
