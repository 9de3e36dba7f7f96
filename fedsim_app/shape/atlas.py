"""The shipped atlas SSM: built from the anatomy helper's populations, loaded from assets."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from fedsim_app.io.grid import Grid
from fedsim_app.shape.model import ShapeModel, Topology, build_ssm

ATLAS_FILE = ("ssm", "atlas_ssm.npz")
DEFAULT_GRID_SIZE = 128
# Field of view of the default label grid (mm per axis, 1.625 mm voxels at 128³), centred
# on the mean heart's bounding box: the atlas mean (about 125 x 110 x 155 mm with the
# aortic arch) keeps ~25 mm of room on every side for the rigid motion; the most extreme
# parameter combinations can still touch the border.
DEFAULT_FOV_MM = 208.0


def topology_from_anatomy(anat_topology) -> Topology:
    """Our :class:`Topology` from :func:`fedsim_app.anatomy.template_topology`'s."""
    names = tuple(anat_topology.names)
    return Topology.from_meshes(
        names,
        [anat_topology.faces[n] for n in names],
        [anat_topology.n_vertices[n] for n in names],
    )


def population_shapes(population: str = "atlas", n: int | None = None, seed: int = 0):
    """Corresponded hearts ``(K, V, 3)`` and their topology from ``fedsim_app.anatomy``.

    ``atlas`` gives the 20 fixed atlas hearts; other populations draw ``n`` (default 20)
    hearts with ``seed``.
    """
    from fedsim_app import anatomy

    topo = topology_from_anatomy(anatomy.template_topology())
    if population == "atlas":
        count = anatomy.ATLAS_SIZE if n is None else n
        params = [anatomy.atlas_params(i) for i in range(count)]
    else:
        if population not in anatomy.POPULATIONS:
            from fedsim_app.errors import FedSimError

            raise FedSimError(
                f"unknown population {population!r} — choose one of "
                f"{', '.join(anatomy.POPULATIONS)}"
            )
        rng = np.random.default_rng(seed)
        params = [anatomy.sample_heart_params(population, rng) for _ in range(n or 20)]
    shapes = np.stack([anatomy.build_heart(p).stacked_vertices() for p in params])
    return shapes, topo


def build_population_ssm(population: str = "atlas", n: int | None = None, seed: int = 0):
    """Build the SSM of an anatomy population (the atlas SSM for ``"atlas"``)."""
    shapes, topo = population_shapes(population, n, seed)
    return build_ssm(shapes, topo)


def atlas_path() -> Path:
    from fedsim_app.assets import asset_path

    return asset_path(*ATLAS_FILE, must_exist=False)


@lru_cache(maxsize=4)
def load_atlas_ssm(path: str | None = None) -> ShapeModel:
    """The shipped atlas SSM (``assets/ssm/atlas_ssm.npz``), or the model at ``path``."""
    from fedsim_app.assets import asset_path

    return ShapeModel.load(path or asset_path(*ATLAS_FILE))


@lru_cache(maxsize=8)
def population_ssm(population: str, seed: int = 0) -> ShapeModel:
    """SSM for a population: the shipped atlas SSM, or one built and cached on first use."""
    if population == "atlas":
        return load_atlas_ssm()
    from fedsim_app.assets import cache_dir

    path = cache_dir() / "ssm" / f"{population}_seed{seed}_{_anatomy_fingerprint()}_ssm.npz"
    if path.is_file():
        return ShapeModel.load(path)
    model = build_population_ssm(population, seed=seed)
    model.save(path)
    return model


@lru_cache(maxsize=1)
def _anatomy_fingerprint() -> str:
    """Short hash of one procedural heart: a cached population SSM built by an older
    anatomy (e.g. before the CT calibration) is not served for the current one."""
    import hashlib

    from fedsim_app import anatomy

    verts = anatomy.build_heart(anatomy.sample_heart_params("adult", 0)).stacked_vertices()
    return hashlib.sha1(np.round(verts, 3).tobytes()).hexdigest()[:10]


def default_grid(
    model: ShapeModel | None = None,
    size: int = DEFAULT_GRID_SIZE,
    fov_mm: float = DEFAULT_FOV_MM,
) -> Grid:
    """The ``size³`` label grid over a fixed field of view around the mean heart.

    Centred on the bounding-box centre of the model's mean shape (world origin when no
    model is given).
    """
    if model is None:
        centre = (0.0, 0.0, 0.0)
    else:
        lo, hi = model.mean.min(0), model.mean.max(0)
        centre = tuple(float(c) for c in (lo + hi) / 2)
    return Grid.centered(size, fov_mm / size, centre)
