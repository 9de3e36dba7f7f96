"""The enhancer's texture gain: each heart structure's texture scaled to the real one's.

Training leaves the enhancer's texture inside the heart structures stronger or weaker than
the site's real images. The calibration, after training, sets each structure's
``texture_gain`` so that the noise figure of ``benchmarks/train_quality.py``
(:func:`~fedsim_app.train.quality.pooled_noise_sd`) of enhanced volumes equals the real
labelled volumes' where the structure has an interior to measure in. It moves no
structure's mean: the scaled residual is centred in each structure of each slice.

Which enhanced volumes (``texture_samples``):

- the labelled volumes themselves, latents refitted as held-out ones are (0). Applied
  offline to the default of 2026-12-06 (docs/benchmarks.md, 2026-12-06 02:45): LV gains
  0.93 / 0.97 / 0.92 at sites A / B / C, held-out noise ratio 1.089 / 1.365 / 1.079 ->
  1.031 / 1.324 / 0.988. But the enhancer's texture is mostly a fixed pattern of its input
  (docs/benchmarks.md, 2026-12-06 16:45: over eight noise draws, the part that moves is
  3 HU of a held-out LV figure of 13-22 HU). On the labelled volumes, which its L1 term
  paired with their real slices, that pattern is the real texture; a gain fitted there
  left 8-54 % too much texture on volumes the enhancer never saw (site A's held-out noise
  ratio 1.15 / 1.45 / 1.54 over three training seeds).
- the model's own samples (N > 0): N latents drawn from its prior, each over its own
  labels, inputs the enhancer never saw, and what export writes. Calibrated on 32 of them
  offline, the same three models' held-out noise ratio at A is 1.02 / 1.08 / 1.25, every
  site's 0.92-1.25; retrained with it, 0.96 / 1.12 / 1.20, every site's 0.82-1.20 (same
  page).
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
                  n_classes: int, *, enhanced_labels: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """(n_classes,) each heart structure's ratio of the pooled noise figures
    (:func:`~fedsim_app.train.quality.pooled_noise_sd`) of ``real`` and ``enhanced``
    volumes (B, K, H, W) with ``labels`` (``enhanced`` with ``enhanced_labels`` when it
    was generated over other labels: the model's own samples), in the structure's eroded
    interior, over the volumes in which that interior holds at least
    :data:`~fedsim_app.train.quality.MIN_INTERIOR` voxels; clamped to
    :data:`GAIN_RANGE`. 1 for the background and for a structure without such a volume
    on either side.

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
    own = labels if enhanced_labels is None else enhanced_labels
    gains = torch.ones(n_classes, dtype=torch.float64)
    for c in range(1, n_classes):
        held_real, held_own = _held(labels, c), _held(own, c)
        if not held_real or not held_own:
            continue
        fake = pooled_noise_sd(enhanced[held_own], own[held_own], c, interior_only=True)
        if fake > 0:
            ratio = pooled_noise_sd(real[held_real], labels[held_real], c,
                                    interior_only=True) / fake
            gains[c] = min(max(ratio, GAIN_RANGE[0]), GAIN_RANGE[1])
    return gains.float()


def _held(labels: torch.Tensor, structure: int) -> list[int]:
    """The volumes of ``labels`` whose ``structure`` has an interior to measure in."""
    return [b for b in range(len(labels)) if noise_voxels(labels[b], structure) >= MIN_INTERIOR]


@torch.no_grad()
def fit_texture_gain(enhancer, coarse_hu: torch.Tensor, real: torch.Tensor,
                     labels: torch.Tensor, *, seed: int = 0,
                     own_labels: torch.Tensor | None = None) -> torch.Tensor:
    """The :func:`texture_gains` of ``enhancer`` (which has a ``texture_gain`` buffer):
    coarse CT (B, s, s, s) HU enhanced over ``labels``, or over ``own_labels`` when the
    coarse CT is the model's own samples', against real volumes (R, K, H, W) hu/1000 with
    ``labels``; enhanced with every gain 1 and one texture draw from ``seed`` (torch's
    global generator untouched)."""
    over = labels if own_labels is None else own_labels
    b, k, h, w = over.shape
    noise = None
    if takes_noise(enhancer):
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((b, k, 1, h, w), generator=gen).to(coarse_hu)
    with texture_gain_set(enhancer, 1.0):
        enhanced = enhance(coarse_hu, over, enhancer, noise=noise) / HU
    return texture_gains(enhanced, real, labels, enhancer.n_classes,
                         enhanced_labels=own_labels).to(enhancer.texture_gain)
