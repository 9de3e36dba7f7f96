"""One case of the virtual cohort: sample a record, then render it deterministically.

Every random choice of a case (heart, torso, contrast timing, noise seed, field of view)
lands in a :class:`CaseRecord` that is written beside the case; :func:`render_case` turns
a record into the image and label volumes with no randomness of its own, so a saved
record replays bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from fedsim_app import __version__
from fedsim_app.cohort.contrast import load_contrast
from fedsim_app.io.grid import Grid
from fedsim_app.io.labels_core import LABEL_OF, STRUCTURES
from fedsim_app.sites import Site

#: Class codes of the rendered scene: torso tissues keep their ``anatomy.Tissue`` codes,
#: heart structures get HEART_BASE + internal label code.
HEART_BASE = 20
LEFT_BLOOD = ("lv_blood_pool", "la", "aorta")
RIGHT_BLOOD = ("rv", "ra", "pulmonary_artery")
MIN_FOV_MM = 90.0  # a neonatal heart still gets a field of view a scanner would use
# Cardiac CT reconstructs a display field of view about the heart (adults ~200-260 mm),
# not the whole chest: 1.6 times the heart's largest extent, capped by the site's scanner.
FOV_PER_HEART_EXTENT = 1.6


@dataclass(frozen=True)
class CaseRecord:
    """Everything random about one case; :func:`render_case` applies it."""

    site: str
    case_id: str
    index: int
    subset: str
    seed: int
    heart: dict
    torso: dict
    iodine_left_mg_per_ml: float
    iodine_right_mg_per_ml: float
    noise_seed: int
    scanner: str
    size: int
    spacing_mm: float
    fidelity: str
    fedsim_version: str = __version__
    #: the world around the heart (`cohort.world.sample_world`); empty in records written
    #: before it existed, which replay in the plain torso they were made with
    world: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CaseRecord:
        return cls(**data)

    @property
    def grid(self) -> Grid:
        """The case's reconstruction grid: ``size``³ isotropic voxels about the heart."""
        return Grid.centered(self.size, self.spacing_mm, tuple(self.torso["heart_center_mm"]))


def case_id_for(site: Site, index: int) -> str:
    return f"site{site.key.lower()}_{index:03d}"


def sample_case(site: Site, index: int, *, seed: int = 0, size: int = 128,
                fidelity: str = "fast", n_cases: int | None = None) -> CaseRecord:
    """Draw case ``index`` of ``site``; the same arguments always give the same record."""
    from fedsim_app.anatomy import build_heart, sample_heart_params, sample_torso_params
    from fedsim_app.cohort.world import sample_world

    rng = np.random.default_rng([seed, site.dataset.id, index])
    heart_params = sample_heart_params(site.population, rng)
    heart = build_heart(heart_params)
    verts = heart.stacked_vertices()
    center = tuple(float(c) for c in (verts.min(0) + verts.max(0)) / 2)
    torso = sample_torso_params(rng, heart_params.age_years, heart_center_mm=center)
    profile = site.scanner
    contrast = load_contrast()[site.key]
    extent = float((verts.max(0) - verts.min(0)).max())
    fov = float(np.clip(extent * FOV_PER_HEART_EXTENT, MIN_FOV_MM, profile.fov_mm))
    # the world draws from its own stream, so the fields above keep their values
    world = sample_world(np.random.default_rng([seed, site.dataset.id, index, 1]),
                         population=site.population, age_years=heart_params.age_years)
    return CaseRecord(
        site=site.key,
        case_id=case_id_for(site, index),
        index=index,
        subset=site.subset_of(index, n_cases),
        seed=seed,
        heart=heart_params.to_dict(),
        torso=torso.to_dict(),
        iodine_left_mg_per_ml=float(rng.uniform(*contrast.iodine_left_mg_per_ml)),
        iodine_right_mg_per_ml=float(rng.uniform(*contrast.iodine_right_mg_per_ml)),
        noise_seed=int(rng.integers(2**31 - 1)),
        scanner=site.scanner.name,
        size=int(size),
        spacing_mm=round(fov / size, 4),
        fidelity=fidelity,
        world=world,
    )


def scene_classes(record: CaseRecord):
    """Labels (internal codes) and scene classes on the record's grid.

    Returns
    -------
    labels : (n, n, n) uint8 internal heart labels
    scene : (n, n, n) uint8 torso tissues and HEART_BASE + heart label
    heart : the heart meshes (``anatomy.HeartMeshes``)
    """
    from fedsim_app.anatomy import HeartParams, TorsoParams, build_heart, build_torso_labels
    from fedsim_app.shape.voxelize import voxelize_meshes

    grid = record.grid
    heart = build_heart(HeartParams.from_dict(record.heart))
    labels = voxelize_meshes({n: (heart.vertices[n], heart.faces[n]) for n in heart.names}, grid)
    torso = build_torso_labels(TorsoParams.from_dict(record.torso), grid, labels > 0)
    scene = np.where(labels > 0, HEART_BASE + labels, torso).astype(np.uint8)
    return labels, scene, heart


def scene_materials(record: CaseRecord) -> dict[int, tuple[str, float]]:
    """Scene class → (material name, iodine mg/mL), with the record's contrast timing."""
    from fedsim_app.anatomy import Tissue
    from fedsim_app.ctsim.materials import TISSUE_MATERIAL

    table = {int(t): (TISSUE_MATERIAL[t.name.lower()], 0.0) for t in Tissue}
    for name in STRUCTURES:
        material = TISSUE_MATERIAL[name]
        iodine = 0.0
        if name in LEFT_BLOOD:
            iodine = record.iodine_left_mg_per_ml
        elif name in RIGHT_BLOOD:
            iodine = record.iodine_right_mg_per_ml
        table[HEART_BASE + LABEL_OF[name]] = (material, iodine)
    return table


def render_case(record: CaseRecord, *, fidelity: str | None = None):
    """Image (HU, float32) and label (internal codes) volumes of one record.

    Returns
    -------
    image, label : :class:`fedsim_app.io.Volume` on ``record.grid``
    """
    import torch

    from fedsim_app.ctsim.render import render
    from fedsim_app.ctsim.scanner import load_scanner
    from fedsim_app.io import Volume

    if record.world:
        from fedsim_app.anatomy import HeartParams, build_heart
        from fedsim_app.cohort.world import render_world
        from fedsim_app.shape.voxelize import voxelize_meshes

        heart = build_heart(HeartParams.from_dict(record.heart))
        labels = voxelize_meshes({n: (heart.vertices[n], heart.faces[n]) for n in heart.names},
                                 record.grid)
        hu = render_world(record, labels, fidelity)
        return Volume(hu, record.grid), Volume(labels, record.grid, kind="label")
    labels, scene, _ = scene_classes(record)
    profile = load_scanner(record.scanner)
    generator = torch.Generator().manual_seed(record.noise_seed)
    hu = render(scene, scene_materials(record), profile, spacing_mm=(record.spacing_mm,) * 3,
                fidelity=fidelity or record.fidelity, generator=generator)
    hu = np.asarray(hu.detach().cpu().numpy() if hasattr(hu, "detach") else hu, np.float32)
    grid = record.grid
    return Volume(hu, grid), Volume(labels, grid, kind="label")
