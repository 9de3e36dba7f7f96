"""Statistical shape model of the heart: build, decode, voxelize, differentiate, fit.

The 21 parameters in ``[-1, 1]`` (14 SSM modes, 3 rotations, 3 translations, 1 log-scale)
decode to seven corresponded meshes (:class:`ShapeModel`), which voxelize exactly and
fast to an internal label volume (:func:`voxelize`). Gradients come from finite
differences (:func:`fd_gradient`, the paper's) or a soft occupancy
(:func:`soft_gradient`); :func:`fit_labels` estimates the parameters of a label map;
:func:`register_labels` then refines every structure onto the map's boundaries, keeping
the vertex correspondence (a new training shape for :func:`build_ssm`).

Examples
--------
>>> import numpy as np
>>> from fedsim_app.shape import ShapeSampler, default_grid, load_atlas_ssm, voxelize
>>> ssm = load_atlas_ssm()
>>> params = ShapeSampler().sample(rng=0, n=1)[0]          # (21,) in [-1, 1]
>>> vertices = ssm.decode(params)                          # (V, 3) world mm, RAS+
>>> labels = voxelize(ssm, vertices, default_grid(ssm))    # (128, 128, 128) uint8, 0..7
>>> meshes = ssm.topology.meshes(vertices)                 # {name: trimesh.Trimesh}
"""

from fedsim_app.shape.atlas import (
    DEFAULT_FOV_MM,
    DEFAULT_GRID_SIZE,
    build_population_ssm,
    default_grid,
    load_atlas_ssm,
    population_ssm,
    topology_from_anatomy,
)
from fedsim_app.shape.fit import FitConfig, FitResult, fit_labels, overlap_scores
from fedsim_app.shape.gradients import (
    cosine,
    fd_gradient,
    soft_gradient,
    soft_label_volumes,
    voxelize_batch,
)
from fedsim_app.shape.model import FORMAT_VERSION, ShapeModel, Topology, build_ssm
from fedsim_app.shape.params import (
    N_MODES,
    N_PARAMS,
    N_RIGID,
    PARAM_NAMES,
    ParamRanges,
    RigidTransform,
    params_from_rigid,
    rigid_from_params,
)
from fedsim_app.shape.procrustes import generalized_procrustes, umeyama
from fedsim_app.shape.register import (
    RegisterConfig,
    Registration,
    register_labels,
    self_intersections,
)
from fedsim_app.shape.sampling import ShapeSampler
from fedsim_app.shape.soft import SoftConfig, soft_labels, soft_occupancy
from fedsim_app.shape.voxelize import (
    PRECEDENCE,
    heart_mask,
    precedence_lut,
    structure_flags,
    voxelize,
    voxelize_meshes,
)

__all__ = [
    "DEFAULT_FOV_MM", "DEFAULT_GRID_SIZE", "FORMAT_VERSION", "FitConfig", "FitResult",
    "N_MODES", "N_PARAMS", "N_RIGID", "PARAM_NAMES", "PRECEDENCE", "ParamRanges",
    "RegisterConfig", "Registration", "RigidTransform", "ShapeModel", "ShapeSampler",
    "SoftConfig", "Topology", "build_ssm",
    "build_population_ssm", "cosine", "default_grid", "fd_gradient", "fit_labels",
    "generalized_procrustes", "heart_mask", "load_atlas_ssm", "overlap_scores",
    "params_from_rigid", "population_ssm", "precedence_lut", "register_labels",
    "rigid_from_params", "self_intersections",
    "soft_gradient", "soft_label_volumes", "soft_labels", "soft_occupancy", "structure_flags",
    "topology_from_anatomy", "umeyama", "voxelize", "voxelize_batch", "voxelize_meshes",
]
