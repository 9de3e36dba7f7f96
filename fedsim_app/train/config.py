"""Training configuration: one frozen dataclass, named presets, TOML overrides.

Presets name the resolutions and the amount of work:

- ``paper``: 128³ labels, 16³ material, 128² slices, 30 + 30 epochs (a GPU's job);
- ``cpu``: 32³ labels and slices, small networks: a 2-core CPU trains a site in minutes;
- ``smoke``: 16³, tiny networks, a handful of steps: seconds, for tests.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from fedsim_app.errors import FedSimError

SHAPE_MODELS = ("atlas", "labels", "labels+atlas")
FRAMES = ("fixed", "case")
TEX_INTERIORS = ("2d", "3d", "volume")
ENHANCER_LEVELS = ("skip", "coarse")  # models.enhancer.LEVELS (kept free of torch here)
ENHANCER_NOISE = ("input", "inject")  # models.enhancer.NOISE


class ConfigError(FedSimError):
    """A training configuration that cannot be used."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on (saved as ``config.toml`` in the run folder).

    Rates follow the paper's appendix for phase 3 (labelled: 1e-4 latents/generators,
    1e-5 GAN; unlabelled: 1e-3 / 1e-4; constant for the first half of the epochs, then a
    linear decay to 0). Phases 1 and 2 rates are not given by the paper; ours are Adam's
    usual 1e-3 for GLO latents/generators and GauGAN's 2e-4 (betas 0, 0.9) for the GAN.
    """

    preset: str = "paper"
    seed: int = 0
    # grids
    label_size: int = 128  # labels, slices and the real volume are resampled to this³
    material_size: int = 16
    # how a volume meets the model's frame (208 mm about the atlas mean heart): "fixed"
    # resamples it there in millimetres (a child's 100 mm scan fills the middle half);
    # "case" scales the cube over its own field of view onto the frame first
    # (fedsim_app.io.fit_to_frame), as the paper resizes every scan to 128³
    frame: str = "fixed"
    latent_dim: int = 32
    # networks
    enhancer_width: int = 64
    enhancer_down: int = 2
    spade_hidden: int = 64
    disc_channels: int = 64
    disc_scales: int = 2
    disc_layers: int = 2  # per scale; scale i has (i + 1)·disc_layers stride-2 layers
    # work per phase (epochs = passes over the phase's volumes)
    phase1_epochs: int = 60
    phase2_epochs: int = 60
    phase3_epochs: int = 60
    # phase 4 (not the paper's; 0 leaves it out, as the paper preset does; smoke takes
    # one epoch, so that the tests run it): the enhancer's and discriminator's GAN steps of
    # phase 2 once more (at lr_phase4), on the generators as phase 3 leaves them, then
    # the enhancer's calibration again. Phase 2 trains the enhancer on the
    # coarse CT of the generators before phase 3 moves them (docs/benchmarks.md,
    # 2026-12-06 07:51)
    phase4_epochs: int = 0
    slices_per_step: int = 0  # enhancer slices per volume and step; 0 = every slice
    # phase 1 starts G_shape at the SSM fitter's parameters of each labelled volume
    # (fedsim_app.shape.fit: centroid similarity, then soft Dice): this many MSE steps on
    # G_shape and the latents; 0 starts from the mean shape. From the mean shape the IoU
    # gradient stalls far from hearts whose pose differs (site C: binary IoU 0.51 against
    # the fitter's 0.86-0.90)
    shape_init_steps: int = 200
    # G_shape's scale range exp(±shape_log_scale) (0: the SSM's own, ±0.25): the CHD
    # sites' small hearts need scales near 0.4, which the SSM's own range cannot reach
    shape_log_scale: float = 0.0
    # the SSM G_shape's parameters decode in: "atlas" (the shipped atlas SSM, the paper's
    # one adult model), "labels" (built from the run's labelled training volumes, each
    # registered to the atlas template) or "labels+atlas" (those and the atlas's own
    # population); it is saved in the checkpoint. In a federation each site builds its
    # own from its labels and keeps it (the shared G_shape learns each site's parameters
    # from that site's latents)
    shape_model: str = "atlas"
    shape_grad: str = "soft"  # "soft" (soft-occupancy autograd) or "fd" (finite differences)
    fd_step: float = 1e-2
    # rates
    lr_phase1: float = 1e-3
    lr_gan: float = 2e-4
    lr_phase4: float = 0.0  # the enhancer's and discriminator's in phase 4; 0: lr_gan
    lr_labelled: float = 1e-4
    lr_labelled_gan: float = 1e-5
    lr_unlabelled: float = 1e-3
    lr_unlabelled_gan: float = 1e-4
    constant_fraction: float = 0.5  # share of a phase's epochs at the full rate
    # loss weights
    w_iou: float = 1.0
    w_mse: float = 1.0
    # structure means of the coarse CT, (hu/1000)², beside the MSE (not in the paper: 0)
    w_smean: float = 0.0
    w_l1: float = 10.0
    w_fm: float = 10.0
    w_adv: float = 1.0
    w_vgg: float = 10.0
    # texture strength inside each heart structure against the real slice (not in the
    # paper: 0; models.losses.texture_loss)
    w_tex: float = 0.0
    # where the texture term measures: each structure's "2d"-eroded interior in the slice,
    # or its "3d"-eroded one in the volume (the slices' neighbours too; docs/benchmarks.md,
    # 2026-12-04 21:03: the enhanced LV core carried 1.3-1.5x the real texture under "2d"),
    # or "volume": the 3-D residual over a slab of contiguous slices centred on the heart
    # (each step's slices are then one slab) inside the 3-D interior, as train_quality
    # measures the noise (2026-12-05 00:07: C's noise ratio 1.11-1.24, B's 1.18-1.50)
    tex_interior: str = "2d"
    # where the enhancer's heart structure levels come from: "skip", the label-wise skip of
    # each voxel's coarse value, or "coarse", each volume's coarse structure means plus a
    # shift fitted at phase 2's start and again at phase 3's end on refitted latents
    # (models.enhancer's notes)
    enhancer_levels: str = "skip"
    # where the enhancer's texture noise enters: "input", one channel beside the
    # conditioning (the paper's); or "inject" too, added with a learnt per-channel gain
    # before the last SPADE block (docs/benchmarks.md, 2026-12-05 21:14: the "input"
    # enhancers learnt to ignore the channel, 94 % of their texture a fixed pattern)
    enhancer_noise: str = "input"
    # the L1 term between mean-filtered slices (box size; 0: the paper's, voxel by voxel)
    l1_box: int = 0
    # mode seeking: −log of the mean |difference| between two draws' slices (0: off)
    w_ms: float = 0.0
    # the structure-mean term's weight against the coarse MSE's 1 in the latent fits of
    # held-out volumes and of phase 3's end calibration (train.quality.refit_latents);
    # 0: the training's own ratio w_smean / w_mse
    refit_smean: float = 0.0
    # calibrate the enhancer's texture gain per heart structure after training, on the
    # labelled volumes with refitted latents (train.calibrate; off: the paper's)
    texture_calibration: bool = False
    # where that gain measures the enhanced texture: on this many of the model's own
    # samples (latents drawn from the prior, their own labels); 0: on the labelled volumes
    # (train.calibrate: there the texture is the real one the L1 term paired it with)
    texture_samples: int = 0
    level_refit_steps: int = 300  # Adam steps of that refit (train_quality's held-out fit's)
    vgg_weights: str = ""  # local VGG-19 state dict; empty = no perceptual term
    # build the coarse scanner's system matrix (minutes once per scanner, then cached):
    # each coarse CT is then a matmul; off, every one runs diffct (tests, one-off runs)
    coarse_matrix: bool = True
    # run folder housekeeping
    checkpoint_every: int = 0  # steps between checkpoints; 0 = at the end of each phase
    sample_every: int = 0  # steps between sample grid refreshes; 0 = end of each phase

    def __post_init__(self) -> None:
        for k in ("phase1_epochs", "phase2_epochs", "phase3_epochs", "phase4_epochs",
                  "lr_phase4"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} must be 0 or more, got {getattr(self, k)}")
        if self.shape_model not in SHAPE_MODELS:
            raise ConfigError(f"shape_model must be one of {', '.join(SHAPE_MODELS)}, got "
                              f"{self.shape_model!r}")
        if self.tex_interior not in TEX_INTERIORS:
            raise ConfigError(f"tex_interior must be one of {', '.join(TEX_INTERIORS)}, got "
                              f"{self.tex_interior!r}")
        if self.enhancer_levels not in ENHANCER_LEVELS:
            raise ConfigError(f"enhancer_levels must be one of {', '.join(ENHANCER_LEVELS)}, "
                              f"got {self.enhancer_levels!r}")
        if self.enhancer_noise not in ENHANCER_NOISE:
            raise ConfigError(f"enhancer_noise must be one of {', '.join(ENHANCER_NOISE)}, "
                              f"got {self.enhancer_noise!r}")
        if self.l1_box < 0 or (self.l1_box and self.l1_box % 2 == 0):
            raise ConfigError(f"l1_box must be 0 (voxel by voxel) or an odd box size, got "
                              f"{self.l1_box}")
        if self.w_ms < 0:
            raise ConfigError(f"w_ms must be 0 (off) or positive, got {self.w_ms}")
        if self.texture_samples < 0:
            raise ConfigError("texture_samples must be 0 (the labelled volumes) or a number "
                              f"of samples, got {self.texture_samples}")
        if self.refit_smean < 0:
            raise ConfigError("refit_smean must be 0 (the training's ratio) or positive, got "
                              f"{self.refit_smean}")
        if self.frame not in FRAMES:
            raise ConfigError(f"frame must be one of {', '.join(FRAMES)}, got {self.frame!r}")
        if self.shape_grad not in ("soft", "fd"):
            raise ConfigError(f"shape_grad must be 'soft' or 'fd', got {self.shape_grad!r}")
        if self.label_size % (2 ** self.enhancer_down):
            raise ConfigError(f"label_size {self.label_size} must be divisible by "
                              f"2**enhancer_down = {2 ** self.enhancer_down}")
        deepest = self.disc_layers * self.disc_scales  # stride-2 layers of the last scale
        if self.label_size >> deepest < 4:
            raise ConfigError(f"a {self.label_size}² slice is too small for {self.disc_scales} "
                              f"discriminator scale(s) of {self.disc_layers} layer(s): the "
                              "deepest must leave 4 or more pixels; lower disc_layers or "
                              "disc_scales")
        if self.material_size % 16:
            raise ConfigError(f"material_size must be a multiple of 16, got "
                              f"{self.material_size}")
        if not 0 <= self.constant_fraction <= 1:
            raise ConfigError(f"constant_fraction must lie in [0, 1], got "
                              f"{self.constant_fraction}")

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = []
        for k, v in self.to_dict().items():
            val = f'"{v}"' if isinstance(v, str) else repr(v).lower() if isinstance(
                v, bool) else repr(v)
            lines.append(f"{k} = {val}")
        return "\n".join(lines) + "\n"


PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    # cpu (measured on site A, docs/benchmarks.md issue 9): phase 1 steps over all
    # labelled volumes, 200 steps at 1e-3 (the coarse MSE was still falling at 60);
    # L1 weighted 20
    # (GauGAN's 10 left 7x the real noise); phase 3's unlabelled rates at the labelled
    # ones: the appendix's 1e-3 / 1e-4 took site A's shape IoU from 0.88 to 0.69 and its
    # material error from 218 to 477 HU in 160 steps. Scale range exp(±1): site B's
    # shape IoU 0.39 -> 0.77 (the SSM's ±0.25 held its small hearts at the limit); L1
    # 50 and coarse MSE 10: site B's enhancer error 279 -> 219 HU. The structure-mean
    # term at the MSE's weight: site B's held-out material error 127 -> 61 HU (3 seeds,
    # benchmarks/material_fit.py); over the coarse voxels labelled each structure rather
    # than each voxel weighed by the share of it the structure fills, the default's
    # held-out material error 18/59/52 -> 11/22/20 HU (sites A/B/C). The SSM from the
    # labelled volumes and the atlas's population: the SSM fitter reaches site B's / C's
    # labelled volumes at binary IoU 0.86 / 0.87 (atlas alone 0.77) and their test
    # volumes at 0.86 / 0.83 (0.80 / 0.79). The enhancer: width 16 at one level below
    # the slice (was 8 at two), phase 2 five times as long at 1e-3 and the texture term:
    # at width 8 and 2e-4 for 40 epochs it stayed near the upsampled coarse CT (grey lungs,
    # no vessels). Phase 2 alone at site A: two-sample test 0.99 -> 0.79, noise ratio
    # 1.46 -> 1.06; a 128³ sample 0.42 -> 1.85 s (docs/benchmarks.md, 2026-12-04).
    # Each scan's own field of view onto the frame, the texture term in the noise
    # figure's 3-D measure over slabs of 16 slices, and the structure levels from the
    # coarse CT: sites trained alone, worst-structure enhancer error A/B/C 36/51/37 ->
    # 27/34/23 HU, C2ST 0.67-0.82 (docs/benchmarks.md, 2026-12-04 21:03 to 2026-12-05
    # 03:13). The texture noise injected with a learnt gain and a mode-seeking term: the
    # "input" channel ended ignored (a draw moved the enhanced texture by <= 6 %), the
    # noise ratio stayed 1.25-1.28. In the federated default noise ratio A/B/C
    # 1.25/1.28/1.25 -> 1.09/1.37/1.08, C2ST 0.66/0.76/0.73 -> 0.56/0.65/0.75, B's
    # enhancer error 31 -> 36 HU (docs/benchmarks.md, 2026-12-05 21:14 and 2026-12-06).
    # Held-out latents fitted weighing the structure means 10x, and the texture gain
    # calibrated per structure: enhancer error A/B/C 24/36/21 -> 24/29/19 HU, noise ratio
    # 1.09/1.37/1.08 -> 1.04/1.30/1.01, C2ST 0.56/0.65/0.75 -> 0.57/0.61/0.77
    # (docs/benchmarks.md, 2026-12-06 02:45). Phase 4, 40 epochs at 1e-4: with the noise
    # figure pooled over the test volumes, in the federated default C2ST A/B/C
    # 0.58/0.61/0.77 -> 0.74/0.54/0.75, noise ratio 1.08/1.14/1.03 -> 1.15/1.24/1.09
    # (docs/benchmarks.md, 2026-12-06 07:51 and 10:50; that is training seed 0: seeds 1
    # and 2 give A's noise ratio 1.45 / 1.54, 13:56); 200 at 1e-3 took the noise ratio
    # further (B 1.52 in the summed figure of then). The texture gain measured on 32 of the
    # model's own samples, not the labelled volumes: A's held-out noise ratio over
    # training seeds 0/1/2 1.15/1.45/1.54 -> 1.02/1.08/1.25 applied offline, 0.96/1.12/1.20
    # retrained, every site 0.82-1.20 (docs/benchmarks.md, 2026-12-06 16:45)
    "cpu": TrainConfig(
        preset="cpu", label_size=32, enhancer_width=16, enhancer_down=1, spade_hidden=16,
        disc_channels=16, disc_scales=1, disc_layers=3, phase1_epochs=200, phase2_epochs=200,
        phase3_epochs=5, phase4_epochs=40, lr_phase4=1e-4, slices_per_step=16,
        lr_phase1=1e-3, lr_gan=1e-3,
        lr_unlabelled=1e-4, lr_unlabelled_gan=1e-5, w_l1=50.0, w_mse=10.0, w_smean=10.0, w_tex=2.0,
        shape_log_scale=1.0, shape_model="labels+atlas", frame="case",
        tex_interior="volume", enhancer_levels="coarse", enhancer_noise="inject", w_ms=0.5,
        refit_smean=10.0, texture_calibration=True, texture_samples=32),
    "smoke": TrainConfig(
        preset="smoke", label_size=16, enhancer_width=8, enhancer_down=1, spade_hidden=8,
        disc_channels=8, disc_scales=1, disc_layers=2, phase1_epochs=2, phase2_epochs=2,
        phase3_epochs=2, phase4_epochs=1, slices_per_step=4, shape_init_steps=0, w_smean=1.0,
        level_refit_steps=10),
}


def preset(name: str, **overrides) -> TrainConfig:
    """A named preset, with field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return from_dict({**PRESETS[name].to_dict(), **overrides})


def from_dict(d: dict) -> TrainConfig:
    """A config from a flat dict; unknown keys are refused (a typo is not a default)."""
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"unknown training setting(s) {', '.join(unknown)}; known: "
                          f"{', '.join(known)}")
    out = {}
    for k, v in d.items():
        typ = type(getattr(TrainConfig(), k))
        if typ is bool and not isinstance(v, bool):
            raise ConfigError(f"setting {k} = {v!r} must be true or false")
        try:
            out[k] = typ(v) if not isinstance(v, typ) else v
        except (TypeError, ValueError):
            raise ConfigError(f"setting {k} = {v!r} is not a {typ.__name__}") from None
    return TrainConfig(**out)


def load_config(path: str | Path, default_preset: str = "paper") -> TrainConfig:
    """A config from TOML: ``preset = "cpu"`` picks the base (``default_preset`` when the
    file names none), other keys override it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read training config ({exc})") from None
    base = data.get("preset", default_preset)
    try:
        return preset(base, **data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
