"""Procedural whole hearts with vertex correspondence, a torso, and populations.

Sample a record, then build deterministically::

    from fedsim_app.anatomy import build_heart, sample_heart_params
    heart = build_heart(sample_heart_params("chd-m", 7))

The cohort's world around a voxelised heart (unlabelled background) lives in
``anatomy.chest`` (wall, skeleton, abdomen), ``anatomy.mediastinum`` (vessels, airways,
lungs), ``anatomy.tubes`` (trees and tubes with partial volume) and ``anatomy.fields``
(correlated random fields for texture).
"""

from fedsim_app.anatomy.heart import build_heart
from fedsim_app.anatomy.meshes import (
    HeartMeshes,
    masks_on_grid,
    overlap_volumes_ml,
    structure_masks,
)
from fedsim_app.anatomy.params import (
    ATLAS_SIZE,
    POPULATIONS,
    HeartParams,
    atlas_params,
    bsa_for_age,
    filling_fraction,
    sample_heart_params,
)
from fedsim_app.anatomy.preview import render_preview_png
from fedsim_app.anatomy.templates import Topology, template_topology
from fedsim_app.anatomy.torso import Tissue, TorsoParams, build_torso_labels, sample_torso_params

__all__ = [
    "ATLAS_SIZE",
    "POPULATIONS",
    "HeartMeshes",
    "HeartParams",
    "Tissue",
    "Topology",
    "TorsoParams",
    "atlas_params",
    "bsa_for_age",
    "build_heart",
    "build_torso_labels",
    "filling_fraction",
    "masks_on_grid",
    "overlap_volumes_ml",
    "render_preview_png",
    "sample_heart_params",
    "sample_torso_params",
    "structure_masks",
    "template_topology",
]
