"""Material stage: labels → material map (16³) → attenuation μ at the site's energy.

The material map ``m`` is attenuation relative to water, ``m = μ/μ_water − 1`` (the
ideal CT number over 1000, ``hu / 1000``: water 0, air −1), so one map images at every
site's effective energy: :func:`material_to_mu` gives ``μ = μ_water(E)·(1 + m)``. A
material generator's tanh output ``m ∈ [−1, 1]`` covers air to +1000 HU, which holds a
16³ block mean of anything in a cardiac field of view (contrast blood ~300-500 HU; bone is
diluted by its neighbours in a 13 mm block).

Without a material generator the map is **Fix-Mat**: the one label → attenuation table
(:func:`label_attenuation`) applied to the labels, then block-averaged to 16³.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fedsim_app.errors import FedSimError
from fedsim_app.io.labels_core import NAME_OF
from fedsim_app.models.shape_stage import N_CLASSES

#: What fills the label grid outside the heart in the atlas material. The label volume
#: knows nothing of the torso (lung, fat, bone): Fix-Mat puts generic soft tissue there,
#: and a trained material generator learns the rest from the site's images.
BACKGROUND_MATERIAL = "soft_tissue"


def label_material_names() -> dict[int, str]:
    """Internal label code (0..7) → material name (``ctsim.TISSUE_MATERIAL``).

    The one label → material mapping of the model; blood structures are contrast
    enhanced (``blood_iodine``).
    """
    from fedsim_app.ctsim.materials import TISSUE_MATERIAL

    return {0: BACKGROUND_MATERIAL,
            **{code: TISSUE_MATERIAL[name] for code, name in NAME_OF.items()}}


def label_attenuation(profile, *, iodine_mg_per_ml: float | None = None,
                      dtype=torch.float32, device=None) -> torch.Tensor:
    """μ (1/mm) of each internal label (8,) at the scanner's effective energy.

    Contrast-enhanced blood carries ``iodine_mg_per_ml`` (default: the scanner protocol's
    ``profile.iodine_mg_per_ml``).
    """
    from fedsim_app.ctsim.materials import mu_per_mm

    iodine = profile.iodine_mg_per_ml if iodine_mg_per_ml is None else iodine_mg_per_ml
    energy = profile.effective_energy_keV
    values = [float(mu_per_mm(name, energy,
                              iodine_mg_per_ml=iodine if name == "blood_iodine" else 0.0))
              for _, name in sorted(label_material_names().items())]
    return torch.tensor(values, dtype=dtype, device=device)


def water_mu(profile) -> float:
    """μ_water (1/mm) at the scanner's effective energy (the HU reference)."""
    from fedsim_app.ctsim.simulate import water_mu_per_mm

    return water_mu_per_mm(profile)


def material_to_mu(material: torch.Tensor, profile) -> torch.Tensor:
    """μ (B, s, s, s) 1/mm of a material map (B, 1, s, s, s): ``μ_water(E)·(1 + m)``."""
    if material.ndim != 5 or material.shape[1] != 1:
        raise FedSimError(f"a material map is (B, 1, s, s, s), got {tuple(material.shape)}")
    return water_mu(profile) * (1.0 + material[:, 0])


def mu_to_material(mu: torch.Tensor, profile) -> torch.Tensor:
    """Inverse of :func:`material_to_mu`: μ (B, s, s, s) → material map (B, 1, s, s, s)."""
    return (mu / water_mu(profile) - 1.0)[:, None]


def block_mean(volume: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over equal blocks: (B, n, n, n) → (B, size, size, size); ``size`` divides n."""
    n = volume.shape[-3:]
    if any(k % size for k in n):
        raise FedSimError(f"a {tuple(n)} volume does not split into {size}³ equal blocks; "
                          f"use a label size that {size} divides")
    return F.avg_pool3d(volume[:, None], kernel_size=tuple(k // size for k in n))[:, 0]


def _hard_fractions(labels: torch.Tensor, size: int, dtype) -> torch.Tensor:
    """:func:`label_fractions` of hard labels by counting (no 8-channel one-hot: at 128³
    the material stage took 0.23 s a sample with the one-hot, 0.12 s with the count)."""
    b, *n = labels.shape
    if any(k % size for k in n):
        raise FedSimError(f"a {tuple(n)} label volume does not split into {size}³ equal "
                          f"blocks; use a label size that {size} divides")
    dev = labels.device
    axes = [torch.arange(k, device=dev) // (k // size) for k in n]  # block coordinate
    block = (axes[0][:, None, None] * size + axes[1][None, :, None]) * size \
        + axes[2][None, None, :]  # (nz, ny, nx) block index
    cells = size ** 3
    flat = (torch.arange(b, device=dev)[:, None] * cells + block.reshape(1, -1)) * N_CLASSES \
        + labels.reshape(b, -1).long()
    counts = torch.bincount(flat.reshape(-1), minlength=b * cells * N_CLASSES)
    per_block = (n[0] // size) * (n[1] // size) * (n[2] // size)
    return (counts.reshape(b, size, size, size, N_CLASSES).movedim(-1, 1).to(dtype)
            / per_block)


def label_fractions(labels: torch.Tensor, size: int, dtype=torch.float32) -> torch.Tensor:
    """(B, 8, size, size, size): the share of each coarse voxel's block that each label fills.

    ``labels``: (B, n, n, n) int hard labels, or (B, 8, n, n, n) label probabilities (the
    fractions are then differentiable in them, in their dtype); ``size`` divides n;
    ``dtype`` of the fractions of hard labels.
    """
    if labels.dtype in (torch.int64, torch.int32, torch.uint8) and labels.ndim == 4:
        return _hard_fractions(labels, size, dtype)
    if not (labels.is_floating_point() and labels.ndim == 5
            and labels.shape[1] == N_CLASSES):
        raise FedSimError(f"the material stage needs hard labels (B, n, n, n) int64 or label "
                          f"probabilities (B, {N_CLASSES}, n, n, n); got "
                          f"{tuple(labels.shape)} {labels.dtype}")
    b = len(labels)
    return block_mean(labels.reshape(b * N_CLASSES, *labels.shape[2:]), size).reshape(
        b, N_CLASSES, size, size, size)


def coarse_labels(labels: torch.Tensor, size: int) -> torch.Tensor:
    """Hard labels (B, n, n, n) on the coarse grid (B, size³): each coarse voxel takes the
    label that torch's ``nearest`` sampling picks in its block. The voxels the material
    figure (:mod:`fedsim_app.train.quality`) and the structure-mean term count."""
    return F.interpolate(labels[:, None].float(), size=(size,) * 3,
                         mode="nearest")[:, 0].long()


def coarse_label_masks(labels: torch.Tensor, size: int, dtype=torch.float32) -> torch.Tensor:
    """(B, 8, size, size, size): :func:`coarse_labels` one-hot, a 0/1 mask per label."""
    return F.one_hot(coarse_labels(labels, size), N_CLASSES).movedim(-1, 1).to(dtype)


def fix_mat(labels: torch.Tensor, table: torch.Tensor, size: int = 16) -> torch.Tensor:
    """Atlas μ map (B, size, size, size) of labels, block-averaged.

    Parameters
    ----------
    labels : (B, n, n, n) int64 hard labels, or (B, 8, n, n, n) label probabilities
        (soft labels: the map is then differentiable in them)
    table : (8,) μ per label (:func:`label_attenuation`)
    """
    frac = label_fractions(labels, size, table.dtype)
    return torch.einsum("bczyx,c->bzyx", frac, table.to(frac.dtype))


def fix_mat_source(profile) -> str:
    """Provenance line of the atlas material."""
    return (f"Fix-Mat: atlas attenuation per label ({BACKGROUND_MATERIAL} outside the "
            f"heart) at {profile.effective_energy_keV:.1f} keV, block mean (no material "
            "generator)")


__all__ = ["BACKGROUND_MATERIAL", "block_mean", "fix_mat", "fix_mat_source",
           "label_attenuation", "label_fractions", "label_material_names", "material_to_mu",
           "mu_to_material", "water_mu"]
