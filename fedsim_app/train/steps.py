"""The named training steps of GLO, each one optimiser update on one volume.

Every step reads its volume by index, computes its losses through the one chain
(:mod:`fedsim_app.models.generator`'s public stages) and updates the optimiser it is
given; the schedule (which step, which rate) is :mod:`fedsim_app.train.glo`'s business.
Image tensors are in ``hu / 1000``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedsim_app.models.enhance import level_inputs, structure_levels_of
from fedsim_app.models.enhancer import one_hot_slices
from fedsim_app.models.generator import coarse_target, enhancer_conditioning, upsample_coarse
from fedsim_app.models.losses import (
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    interior_3d,
    interior_volumes,
    l1_loss,
    mode_seeking_loss,
    soft_iou,
    soft_iou_loss,
    structure_mean_loss,
    texture_loss,
)
from fedsim_app.models.material import coarse_label_masks
from fedsim_app.models.shape_stage import decode, hard_labels, soft_label_probs
from fedsim_app.train.config import TrainConfig
from fedsim_app.train.data import SiteData
from fedsim_app.train.latents import Latents, latent_prior, sample_normal
from fedsim_app.train.quality import MIN_INTERIOR, refit_latents
from fedsim_app.train.shape_grad import finite_difference_loss

HU_SCALE = 1000.0


@dataclass
class Nets:
    """Everything that learns: the four networks and the latent codes."""

    g_shape: nn.Module
    g_material: nn.Module
    enhancer: nn.Module
    disc: nn.Module
    z_lab: Latents
    z_unl: Latents | None = None

    def modules(self) -> dict[str, nn.Module]:
        out = {"g_shape": self.g_shape, "g_material": self.g_material,
               "enhancer": self.enhancer, "disc": self.disc, "z_lab": self.z_lab}
        if self.z_unl is not None:
            out["z_unl"] = self.z_unl
        return out

    def to(self, device) -> Nets:
        """Move every module (and the latents) to ``device``; returns self."""
        for m in self.modules().values():
            m.to(device)
        return self

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.g_shape.parameters(), *self.g_material.parameters()]


def _item(losses: dict) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in losses.items()}


class GLOSteps:
    """The steps of one site's training.

    Parameters
    ----------
    cfg : the run's configuration
    chain : the site's :class:`~fedsim_app.models.generator.Generator` (its grid, SSM,
        material mapping and coarse scanner; the networks come from ``nets``)
    nets : the learning parts
    data : the site's volumes on ``chain.grid``
    rng : the training generator (slice picks, enhancer noise), saved in checkpoints
    vgg : optional perceptual loss module
    """

    def __init__(self, cfg: TrainConfig, chain, nets: Nets, data: SiteData,
                 rng: torch.Generator, vgg: nn.Module | None = None):
        self.cfg, self.chain, self.nets, self.data, self.rng, self.vgg = (
            cfg, chain, nets, data, rng, vgg)
        # the real volumes reduced to the coarse grid, the material loss's targets
        self.coarse_real = coarse_target(data.images * HU_SCALE, cfg.material_size) / HU_SCALE
        # which coarse voxels count as each labelled structure (the structure-mean term)
        self.coarse_masks = (coarse_label_masks(data.labels, cfg.material_size)
                             if data.n_labelled else None)

    # -- losses ------------------------------------------------------------------------
    def pick_slices(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Axial slice indices of one enhancer step (drawn from the training generator):
        ``slices_per_step`` at random, or, when the texture term is measured in 3-D
        (``tex_interior = "volume"``), one slab of as many contiguous slices centred on a
        slice of the heart in ``labels`` (B, K, H, W) (anywhere when none is given or
        holds a heart): a structure's 3-D interior is a few slices of the heart, which
        spans a third of the frame."""
        k = self.data.images.shape[1]
        n = self.cfg.slices_per_step
        if n <= 0 or n >= k:
            return torch.arange(k)
        if self.cfg.tex_interior == "volume":
            heart = (torch.nonzero((labels > 0).flatten(2).any(2).any(0))[:, 0].cpu()
                     if labels is not None else torch.zeros(0, dtype=torch.long))
            if len(heart):
                centre = int(heart[int(torch.randint(0, len(heart), (1,),
                                                     generator=self.rng))])
                start = min(max(centre - n // 2, 0), k - n)
            else:
                start = int(torch.randint(0, k - n + 1, (1,), generator=self.rng))
            return torch.arange(start, start + n)
        return torch.randperm(k, generator=self.rng)[:n].sort().values

    def _hard_iou_items(self, params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels = hard_labels(self.chain.ssm, decode(self.chain.ssm, params), self.chain.grid)
        onehot = F.one_hot(labels, 8).movedim(-1, 1).to(params.dtype)  # (B, 8, n, n, n)
        return 1 - soft_iou(onehot, target)[:, 1:].mean(1)

    def shape_loss(self, params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """IoU loss of the SSM's labels of ``params`` (B, 21) against ``target`` labels."""
        if self.cfg.shape_grad == "fd":
            return finite_difference_loss(
                params, lambda p: self._hard_iou_items(p, target), self.cfg.fd_step).mean()
        probs = soft_label_probs(self.chain.ssm, params, self.chain.grid,
                                 self.chain.config.soft)  # (B, 8, n, n, n)
        return soft_iou_loss(probs, target)

    def coarse_of(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The model's coarse CT (B, s, s, s) in HU from latents (B, 32) over ``labels``
        (hard (B, n, n, n), or probabilities (B, 8, n, n, n): gradient to the shape)."""
        return self.chain.coarse_ct(self.chain.mu(self.nets.g_material(z, labels)))

    def shape_material_losses(self, idx: torch.Tensor):
        """``({"iou", "mse"[, "smean"]}, coarse_hu)`` of labelled volumes ``idx``."""
        z = self.nets.z_lab(idx)
        iou = self.shape_loss(self.nets.g_shape(z), self.data.labels[idx])
        # the ground-truth labels place the materials, as they do the enhancer's
        coarse = self.coarse_of(z, self.data.labels[idx])
        mse = F.mse_loss(coarse / HU_SCALE, self.coarse_real[idx])
        losses = {"iou": iou, "mse": mse}
        if self.cfg.w_smean:
            losses["smean"] = structure_mean_loss(coarse / HU_SCALE, self.coarse_real[idx],
                                                  self.coarse_masks[idx])
        return losses, coarse

    def enhancer_inputs(self, coarse_hu, hard, probs, slices):
        """Conditioning rows of volumes (B, K, H, W): hard labels, or soft ``probs``
        (B, 8, K, H, W) in their place when given (gradient to the shape)."""
        coarse_up, lab, k_frac = enhancer_conditioning(coarse_hu, hard, slices)
        if probs is not None:
            h, w = hard.shape[-2:]
            lab = probs[:, :, slices].transpose(1, 2).reshape(-1, probs.shape[1], h, w)
        return coarse_up, lab, k_frac

    def enhancer_losses(self, coarse_hu, real_idx, hard, probs=None) -> dict:
        """Generator losses of the enhancer on random slices of volumes ``real_idx``:
        hinge adversarial, feature matching, L1 to the real slice (and the VGG, texture
        and mode-seeking terms where set)."""
        slices = self.pick_slices(hard)
        coarse_up, lab, k_frac = self.enhancer_inputs(coarse_hu, hard, probs, slices)
        h, w = hard.shape[-2:]
        real = self.data.images[real_idx][:, slices].reshape(-1, 1, h, w)  # (N, 1, H, W)
        levels = level_inputs(self.nets.enhancer, coarse_hu, hard, len(slices))  # detached
        fake = self.nets.enhancer(coarse_up, lab, k_frac, generator=self.rng, **levels)
        fake_logits, fake_feats = self.nets.disc(fake, lab)
        with torch.no_grad():
            _, real_feats = self.nets.disc(real, lab)
        losses = {"g_adv": hinge_g_loss(fake_logits),
                  "fm": feature_matching_loss(real_feats, fake_feats),
                  "l1": l1_loss(fake, real, box=self.cfg.l1_box)}
        if self.vgg is not None:
            losses["vgg"] = self.vgg(fake, real)
        if self.cfg.w_tex:
            losses["tex"] = self.texture_term(fake, real, lab, hard, slices)
        if self.cfg.w_ms:
            losses["ms"] = self.mode_seeking_term(coarse_up, lab, k_frac, levels)
        return losses

    def mode_seeking_term(self, coarse_up, lab, k_frac, levels: dict) -> torch.Tensor:
        """Mode seeking: two draws through the enhancer on the same rows should differ.
        The conditioning is detached: the term trains the enhancer's use of its noise,
        not the coarse CT or the shape (which it would otherwise push toward contrasts
        that amplify the draw)."""
        twice = [torch.cat([t.detach()] * 2) for t in (coarse_up, lab, k_frac)]
        pair = self.nets.enhancer(*twice, generator=self.rng,
                                  **{k: torch.cat([v] * 2) for k, v in levels.items()})
        return mode_seeking_loss(*pair.chunk(2))  # the first N rows one draw, the rest another

    def texture_term(self, fake, real, lab, hard, slices) -> torch.Tensor:
        """The texture term (``tex_interior``) of enhanced ``fake`` against ``real`` rows
        (N, 1, H, W) of ``slices`` of volumes with hard labels ``hard`` (B, K, H, W);
        ``lab``: the rows' label slices, or their probabilities."""
        n_classes = self.nets.enhancer.n_classes
        if self.cfg.tex_interior == "2d":
            onehot = lab if lab.is_floating_point() else one_hot_slices(lab, n_classes,
                                                                          fake.dtype)
            return texture_loss(fake, real, onehot)
        if self.cfg.tex_interior == "3d":
            return texture_loss(fake, real, None,
                                interior=interior_3d(hard, slices, n_classes).to(fake.dtype))
        # "volume": slabs (B, 1, K, H, W), a structure counted from as many voxels as
        # train_quality's noise figure (a child's LV core at 32³ is about 24 a volume,
        # which texture_loss's default of 16 in one slab seldom reached)
        h, w = hard.shape[-2:]
        a, b = (x.reshape(hard.shape[0], len(slices), 1, h, w).transpose(1, 2)
                for x in (fake, real))
        inner = interior_volumes(hard, n_classes)[:, :, slices].to(fake.dtype)
        return texture_loss(a, b, None, interior=inner, min_pixels=MIN_INTERIOR)

    def weighted(self, losses: dict) -> torch.Tensor:
        c = self.cfg
        w = {"iou": c.w_iou, "mse": c.w_mse, "smean": c.w_smean, "g_adv": c.w_adv,
             "fm": c.w_fm, "l1": c.w_l1, "vgg": c.w_vgg, "tex": c.w_tex, "ms": c.w_ms}
        return sum(w[k] * v for k, v in losses.items())

    def shape_fit_targets(self) -> torch.Tensor:
        """(N_labelled, 21) parameters the SSM's own fitter finds for each labelled volume.

        The fitter's frame offset (a shift it keeps outside the parameters) goes into the
        translations, clipped to their range: the chain has no offset, and left out it
        cost the CHD sites' small hearts a third of their IoU (docs/benchmarks.md)."""
        from fedsim_app.shape.fit import fit_labels

        ssm = self.chain.ssm
        fits = []
        for lab in self.data.labels:
            fit = fit_labels(ssm, lab.cpu().numpy(), self.chain.grid)
            p = fit.params.copy()
            p[17:20] = np.clip(p[17:20] + np.asarray(fit.offset_mm) / ssm.ranges.translation_mm,
                               -1, 1)
            fits.append(p)
        return torch.as_tensor(np.stack(fits), dtype=torch.float32, device=self.chain.device)

    def run_shape_init(self, opt, n_steps: int, targets: torch.Tensor | None = None
                       ) -> dict[str, float]:
        """Phase 1's start: ``n_steps`` MSE steps of G_shape(z) towards the fitted
        parameters of every labelled volume (``targets``: :meth:`shape_fit_targets`,
        computed when not given; updates G_shape and the latents)."""
        if targets is None:
            targets = self.shape_fit_targets()
        target = targets.clamp(-0.97, 0.97)  # inside tanh's range, so the MSE can reach it
        loss = torch.zeros(())
        for _ in range(n_steps):
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(self.nets.g_shape(self.nets.z_lab.codes), target)
            loss.backward()
            opt.step()
        return {"shape_init": float(loss.detach())}

    @torch.no_grad()
    def fit_enhancer_skip(self) -> None:
        """Phase 2's start: fit the enhancer's label-wise skip (structure levels from the
        coarse CT) to the labelled volumes, their coarse CT from their latents; with
        ``enhancer_levels = "coarse"`` also its level shift."""
        n = self.data.n_labelled
        labels = self.data.labels[:n]
        coarse = self.coarse_of(self.nets.z_lab.codes, labels)
        up = upsample_coarse(coarse, tuple(labels.shape[1:])) / HU_SCALE
        self.nets.enhancer.fit_skip(up, self.data.images[:n], labels)
        if self.nets.enhancer.uses_levels:
            self.nets.enhancer.fit_levels(structure_levels_of(coarse, labels),
                                          self.data.images[:n], labels)

    def calibrate_enhancer(self, prior: dict | None, n_iter: int = 300) -> None:
        """Phase 3's end: with ``enhancer_levels = "coarse"``, fit the level shift again;
        with ``texture_calibration``, then the texture gain of each heart structure
        (:func:`fedsim_app.train.calibrate.fit_texture_gain`). The levels on the labelled
        volumes' coarse CT from latents fitted afresh to each of them from the ``prior``'s
        mean, as held-out volumes' are (:func:`refit_latents`), not from their training
        latents: at test time the coarse CT comes from such a fit, and its structure
        levels sit differently (docs/benchmarks.md, 2026-12-05 00:07: worst structure at
        B / C 39 / 42 HU calibrated on the training latents, 35 / 23 on refitted ones,
        offline). The texture on the same volumes, or with ``texture_samples`` on that
        many of the model's own samples drawn from the ``prior`` (seed + 3). With no
        ``prior`` (no phase 3 ran), the normal phase 3 would fit to the labelled latents
        (:func:`~fedsim_app.train.latents.latent_prior`). The latents are refitted only
        where something reads them: the levels, or the texture on the labelled volumes."""
        from fedsim_app.train.calibrate import fit_texture_gain
        from fedsim_app.train.samples import evaluating

        enh, n = self.nets.enhancer, self.data.n_labelled
        gain = hasattr(enh, "texture_gain")
        if not (enh.uses_levels or gain) or not n:
            return
        if prior is None:
            prior = latent_prior(self.nets.z_lab.codes)
        images, labels = self.data.images[:n], self.data.labels[:n]
        on_samples = gain and self.cfg.texture_samples > 0
        if enh.uses_levels or not on_samples:
            with evaluating(self.nets.g_material):
                z = refit_latents(self.cfg, prior, self.nets, self.chain, images, labels,
                                  n_iter=n_iter)
                with torch.no_grad():
                    coarse = self.coarse_of(z, labels)
        if enh.uses_levels:
            enh.fit_levels(structure_levels_of(coarse, labels), images, labels)
        if not gain:
            return
        own = None
        if on_samples:
            coarse, own = self.own_samples(prior, self.cfg.texture_samples, self.cfg.seed + 3)
        with evaluating(enh):  # with the levels just fitted; one texture draw of its own seed
            enh.texture_gain.copy_(fit_texture_gain(enh, coarse, images, labels,
                                                    seed=self.cfg.seed, own_labels=own))

    @torch.no_grad()
    def own_samples(self, prior: dict, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(coarse CT (n, s, s, s) HU, labels (n, m, m, m))`` of ``n`` latents drawn
        from ``prior`` (``{"mean", "cov"}``) with ``seed``, each over G_shape's labels."""
        from fedsim_app.train.samples import evaluating

        z = sample_normal(prior["mean"], prior["cov"], n, seed=seed).to(self.data.images.device)
        with evaluating(self.nets.g_shape, self.nets.g_material):
            params = self.nets.g_shape(z)
            labels = hard_labels(self.chain.ssm, decode(self.chain.ssm, params), self.chain.grid)
            return self.coarse_of(z, labels), labels

    # -- steps ---------------------------------------------------------------------------
    def run_shape_material_step(self, idx: torch.Tensor, opt) -> dict[str, float]:
        """Phase 1: IoU + coarse MSE on labelled volumes; updates z, G_shape, G_material."""
        opt.zero_grad(set_to_none=True)
        losses, _ = self.shape_material_losses(idx)
        self.weighted(losses).backward()
        opt.step()
        return _item(losses)

    def run_generator_step(self, idx: torch.Tensor, opt) -> dict[str, float]:
        """Phase 2: the enhancer on ground-truth label slices and the model's coarse CT
        (held fixed), the real slices as targets; updates the enhancer."""
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            coarse = self.coarse_of(self.nets.z_lab(idx), self.data.labels[idx])
        losses = self.enhancer_losses(coarse, idx, self.data.labels[idx])
        self.weighted(losses).backward()
        opt.step()
        return _item(losses)

    def run_discriminator_step(self, idx: torch.Tensor, opt) -> dict[str, float]:
        """Phase 2: hinge loss of the discriminator, real slices against enhanced ones."""
        opt.zero_grad(set_to_none=True)
        hard = self.data.labels[idx]
        h, w = hard.shape[-2:]
        slices = self.pick_slices(hard)
        with torch.no_grad():
            coarse = self.coarse_of(self.nets.z_lab(idx), hard)
            coarse_up, lab, k_frac = enhancer_conditioning(coarse, hard, slices)
            fake = self.nets.enhancer(coarse_up, lab, k_frac, generator=self.rng,
                                      **level_inputs(self.nets.enhancer, coarse, hard,
                                                     len(slices)))
        real = self.data.images[idx][:, slices].reshape(-1, 1, h, w)
        real_logits, _ = self.nets.disc(real, lab)
        fake_logits, _ = self.nets.disc(fake, lab)
        loss = hinge_d_loss(real_logits, fake_logits)
        loss.backward()
        opt.step()
        return {"d": float(loss.detach())}

    def run_gan_step(self, idx: torch.Tensor, d_opt, g_opt) -> dict[str, float]:
        """Phase 2's (and 4's) step: the discriminator's, then the enhancer's, on ``idx``."""
        return {**self.run_discriminator_step(idx, d_opt),
                **self.run_generator_step(idx, g_opt)}

    def run_labelled_step(self, idx: torch.Tensor, opt) -> dict[str, float]:
        """Phase 3, labelled: shape and material losses plus the enhancer's losses on
        ground-truth labels, the coarse CT now carrying gradient to z and G_material."""
        opt.zero_grad(set_to_none=True)
        losses, coarse = self.shape_material_losses(idx)
        losses.update(self.enhancer_losses(coarse, idx, self.data.labels[idx]))
        self.weighted(losses).backward()
        opt.step()
        return _item(losses)

    def update_latents(self, idx: torch.Tensor, opt) -> dict[str, float]:
        """Phase 3, unlabelled: the full chain from the volume's latent (generated soft
        labels into G_material and the enhancer) against its real slices, and the coarse
        CT against the real volume reduced to the coarse grid; updates the unlabelled
        latents, G_shape, G_material and the enhancer."""
        opt.zero_grad(set_to_none=True)
        z = self.nets.z_unl(idx)
        params = self.nets.g_shape(z)
        hard = hard_labels(self.chain.ssm, decode(self.chain.ssm, params), self.chain.grid)
        probs = soft_label_probs(self.chain.ssm, params, self.chain.grid,
                                 self.chain.config.soft)
        coarse = self.coarse_of(z, probs)
        real_idx = idx + self.data.n_labelled
        losses = self.enhancer_losses(coarse, real_idx, hard, probs)
        # the coarse MSE needs no labels: every unlabelled volume also teaches G_material
        losses["mse"] = F.mse_loss(coarse / HU_SCALE, self.coarse_real[real_idx])
        self.weighted(losses).backward()
        opt.step()
        return _item(losses)
