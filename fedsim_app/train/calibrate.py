"""The enhancer's texture gain: each heart structure's texture scaled to the real one's.

Training leaves the enhancer's texture inside the heart structures stronger or weaker than
the site's real images, by a factor that carries from the labelled volumes (latents
refitted as held-out ones are) to the held-out ones. Applied offline to the default of
2026-12-06 (docs/benchmarks.md, 2026-12-06 02:45): LV gains 0.93 / 0.97 / 0.92 at sites A
/ B / C, held-out noise ratio 1.089 / 1.365 / 1.079 -> 1.031 / 1.324 / 0.988, two-sample
tests within their classifiers' spread. B's excess is in its smallest LVs: at the edges of
one with no interior (which the noise figure then measures) and in the interior of one whose
every interior voxel is a step from an edge; a gain fitted on the interiors of the labelled
volumes does not reach either (docs/benchmarks.md, 2026-12-06 05:17). The calibration, after
training, measures that factor on the labelled volumes and divides it out: it sets each
structure's ``texture_gain`` so that the noise figure of ``benchmarks/train_quality.py``
(:func:`~fedsim_app.train.quality.pooled_noise_sd`) of the enhanced labelled volumes equals
the real ones' where the structure has an interior to measure in. It moves no structure's mean:
the scaled residual is centred in each structure of each slice.
"""

from __future__ import annotations

import contextlib

import torch

from fedsim_app.models.enhance import takes_noise
from fedsim_app.models.generator import enhance
from fedsim_app.train.quality import HU, MIN_INTERIOR, noise_voxels, pooled_noise_sd

GAIN_RANGE = (0.25, 4.0)  # the gains allowed (a texture 4x too weak or too strong)


@contextlib.contextmanager
def texture_gain_set(enhancer, value: float):
    """``enhancer.texture_gain`` filled with ``value`` inside the block, restored after."""
    kept = enhancer.texture_gain.clone()
    enhancer.texture_gain.fill_(value)
    try:
        yield enhancer
    finally:
        enhancer.texture_gain.copy_(kept)


def texture_gains(enhanced: torch.Tensor, real: torch.Tensor, labels: torch.Tensor,
                  n_classes: int) -> torch.Tensor:
    """(n_classes,) each heart structure's ratio of the pooled noise figures
    (:func:`~fedsim_app.train.quality.pooled_noise_sd`) of ``real`` and ``enhanced``
    volumes (B, K, H, W) with ``labels``, in the structure's eroded interior, over the
    volumes in which that interior holds at least
    :data:`~fedsim_app.train.quality.MIN_INTERIOR` voxels; clamped to
    :data:`GAIN_RANGE`. 1 for the background and for a structure without such a volume.

    Only there: inside the interior the enhancer's level is one value, so the figure of
    ``enhanced`` scales with the gain exactly. Not in a structure too thin for an
    interior, measured over its edges, where the figure is the edges' sharpness more than
    the texture (docs/benchmarks.md, 2026-12-06: gains searched on that figure too went to
    0.25-0.5 in the aorta, pulmonary artery and myocardium and took site C's two-sample
    test from 0.746 to 0.766); nor in interiors of a few voxels, each a step from an edge,
    where the enhancer's softer edge reads as texture (pooled over such interiors, the
    gains of A's RV and C's LA and aorta went to the clamp, 0.25: docs/benchmarks.md,
    2026-12-06 10:50).
    """
    gains = torch.ones(n_classes, dtype=torch.float64)
    for c in range(1, n_classes):
        held = [b for b in range(len(labels)) if noise_voxels(labels[b], c) >= MIN_INTERIOR]
        if not held:
            continue
        fake = pooled_noise_sd(enhanced[held], labels[held], c, interior_only=True)
        if fake > 0:
            ratio = pooled_noise_sd(real[held], labels[held], c, interior_only=True) / fake
            gains[c] = min(max(ratio, GAIN_RANGE[0]), GAIN_RANGE[1])
    return gains.float()


@torch.no_grad()
def fit_texture_gain(enhancer, coarse_hu: torch.Tensor, real: torch.Tensor,
                     labels: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """The :func:`texture_gains` of ``enhancer`` (which has a ``texture_gain`` buffer) on
    volumes: their coarse CT (B, s, s, s) HU, real volumes (B, K, H, W) hu/1000 and labels;
    enhanced with every gain 1 and one texture draw from ``seed`` (torch's global
    generator untouched)."""
    b, k, h, w = labels.shape
    noise = None
    if takes_noise(enhancer):
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((b, k, 1, h, w), generator=gen).to(coarse_hu)
    with texture_gain_set(enhancer, 1.0):
        enhanced = enhance(coarse_hu, labels, enhancer, noise=noise) / HU
    return texture_gains(enhanced, real, labels, enhancer.n_classes).to(enhancer.texture_gain)
