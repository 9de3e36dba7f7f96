"""GLO training of one site, one visible loop per phase.

Phase 1 fits latents, G_shape and G_material on the labelled volumes; phase 2 trains the
site enhancer and its discriminator on them; phase 3 fits a normal to the latents, draws
latents for the unlabelled volumes and alternates labelled and unlabelled steps with the
discriminator frozen, two Adam optimisers at the appendix's rates; phase 4
(``phase4_epochs``, off in the paper preset) trains the enhancer and discriminator as
phase 2 does once more (at ``lr_phase4``), on the generators as phase 3 leaves them.
Every step's state (networks, optimisers, latents, RNG, position) goes into the
checkpoint, so a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from fedsim_app.models.discriminator import SliceDiscriminator
from fedsim_app.models.enhancer import SiteEnhancer
from fedsim_app.models.g_material import MaterialGenerator
from fedsim_app.models.g_shape import ShapeGenerator
from fedsim_app.train.checkpoint import (
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
    shape_model_state,
)
from fedsim_app.train.config import TrainConfig
from fedsim_app.train.data import SiteData
from fedsim_app.train.latents import Latents, latent_prior, sample_normal
from fedsim_app.train.runlog import RunLog
from fedsim_app.train.samples import write_samples
from fedsim_app.train.schedule import lr_factor, set_rates
from fedsim_app.train.steps import GLOSteps, Nets

DONE = 5  # the phase number of a finished run
CHECKPOINT = "checkpoint.pt"


class Interrupted(Exception):
    """Training stopped at a step boundary on request; a checkpoint was written."""

    def __init__(self, path: Path):
        super().__init__(f"interrupted; checkpoint written to {path}")
        self.path = path


def build_nets(cfg: TrainConfig, n_labelled: int, *, latent_seed: int | None = None) -> Nets:
    """The networks and the labelled latents, initialised from ``cfg.seed`` (the latents
    from ``latent_seed`` when given: a federation's sites draw different ones)."""
    torch.manual_seed(cfg.seed)
    return Nets(
        g_shape=ShapeGenerator(cfg.latent_dim, log_scale=cfg.shape_log_scale),
        g_material=MaterialGenerator(cfg.latent_dim, cfg.material_size),
        enhancer=SiteEnhancer(8, width=cfg.enhancer_width, n_down=cfg.enhancer_down,
                              spade_hidden=cfg.spade_hidden, levels=cfg.enhancer_levels,
                              noise=cfg.enhancer_noise,
                              texture_gain=cfg.texture_calibration),
        disc=SliceDiscriminator(8, channels=cfg.disc_channels, num_d=cfg.disc_scales,
                                num_layers_d=cfg.disc_layers, slice_size=cfg.label_size),
        z_lab=Latents(n_labelled, cfg.latent_dim,
                      seed=cfg.seed if latent_seed is None else latent_seed),
    )


GAN_BETAS = (0.0, 0.9)  # GauGAN's


def build_optimizers(nets: Nets, cfg: TrainConfig, *,
                     generators: bool = True) -> dict[str, torch.optim.Adam]:
    """The GLO optimisers at the appendix's rates, one per kind of step.

    ``phase1`` (latents and generators), ``enhancer`` and ``disc``; once the unlabelled
    latents exist also ``labelled`` and ``unlabelled`` (phase 3's two optimisers). With
    ``generators=False`` G_shape and G_material are left out of every group: a federated
    site leaves their gradients in ``.grad`` for the server, which applies them.
    """
    c, n = cfg, nets
    gen = n.generator_parameters() if generators else []

    def groups(*pairs):
        listed = [(list(p), lr) for p, lr in pairs]
        return [{"params": p, "lr": lr} for p, lr in listed if p]

    opt = {
        "phase1": torch.optim.Adam(groups((n.z_lab.parameters(), c.lr_phase1),
                                          (gen, c.lr_phase1))),
        "enhancer": torch.optim.Adam(n.enhancer.parameters(), lr=c.lr_gan, betas=GAN_BETAS),
        "disc": torch.optim.Adam(n.disc.parameters(), lr=c.lr_gan, betas=GAN_BETAS),
    }
    if n.z_unl is not None:
        opt["labelled"] = torch.optim.Adam(groups(
            (n.z_lab.parameters(), c.lr_labelled), (gen, c.lr_labelled),
            (n.enhancer.parameters(), c.lr_labelled_gan)))
        opt["unlabelled"] = torch.optim.Adam(groups(
            (n.z_unl.parameters(), c.lr_unlabelled), (gen, c.lr_unlabelled),
            (n.enhancer.parameters(), c.lr_unlabelled_gan)))
    return opt


def base_rates(opt: dict[str, torch.optim.Optimizer]) -> dict[str, list[float]]:
    """Each optimiser's group rates before any decay (what ``set_rates`` scales)."""
    return {k: [g["lr"] for g in o.param_groups] for k, o in opt.items()}


def freeze_discriminator(disc: torch.nn.Module) -> None:
    """Phase 3 trains against a fixed discriminator (the paper: it steadies training)."""
    disc.requires_grad_(False)
    disc.eval()


def unfreeze_discriminator(disc: torch.nn.Module) -> None:
    """Phase 4 trains the discriminator again, as phase 2 does."""
    disc.requires_grad_(True)
    disc.train()


def phase_steps(cfg: TrainConfig, n_labelled: int,
                n_unlabelled: int) -> tuple[int, int, int, int]:
    """Steps of phases 1-4 for a site with these volumes (a federation's rounds too).

    Phase 1 steps over every labelled volume at once (G_material's BatchNorm needs a batch
    of latents, not one), so a step is an epoch there; phases 2 and 4 take one labelled
    volume a step; phase 3 alternates a labelled and an unlabelled step.
    """
    return (cfg.phase1_epochs, cfg.phase2_epochs * n_labelled,
            cfg.phase3_epochs * 2 * n_unlabelled, cfg.phase4_epochs * n_labelled)


def gan_rate_scale(cfg: TrainConfig, phase: int) -> float:
    """What the GAN optimisers' rates (``lr_gan``) are multiplied by in ``phase``:
    ``lr_phase4 / lr_gan`` in phase 4 when ``lr_phase4`` is set, else 1."""
    return cfg.lr_phase4 / cfg.lr_gan if phase == 4 and cfg.lr_phase4 else 1.0


def is_finished(state: dict) -> bool:
    """Whether a training checkpoint's run is over. Checkpoints written before phase 4
    existed (their config has no ``phase4_epochs``) ended at phase number 4."""
    phase = int(state["phase"])
    return phase >= DONE or (phase == DONE - 1 and "phase4_epochs" not in
                             state.get("config", {}))


@torch.no_grad()
def calibrate_batchnorm(module: torch.nn.Module, *inputs: torch.Tensor) -> None:
    """Set ``module``'s BatchNorm running statistics to the exact statistics of one
    train-mode pass over ``inputs`` (G_material: the latents (B, latent_dim) and their
    labels), then put it in eval mode.

    Phase 1 trains G_material on batches of all labelled latents, so its train-mode
    BatchNorm normalises over exactly that set; after this call the eval-mode network
    gives the same output on those latents, and a new latent (phase 3, inference) is
    normalised with the statistics the network was trained under.
    """
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def record(norm, args):  # the batch's own (biased) statistics, as train mode uses them
        x = args[0]
        dims = [0, *range(2, x.ndim)]  # all but the channel axis
        norm.running_mean.copy_(x.mean(dims))
        norm.running_var.copy_(x.var(dims, unbiased=False))

    hooks = [m.register_forward_pre_hook(record) for m in norms]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # train mode's own running update must leave the record alone
    try:
        module.train()
        module(*inputs)
    finally:
        for h in hooks:
            h.remove()
        for m, mom in zip(norms, momenta, strict=True):
            m.momentum = mom
    module.eval()


def start_phase3(nets: Nets, cfg: TrainConfig, n_unlabelled: int) -> dict:
    """Fit N(μ, Σ) to the labelled latents, draw the unlabelled ones from it (seeded) and
    freeze the discriminator; returns the prior ``{"mean", "cov"}``."""
    device = nets.z_lab.codes.device
    prior = latent_prior(nets.z_lab.codes)
    nets.z_unl = Latents(n_unlabelled, cfg.latent_dim).to(device)
    with torch.no_grad():
        nets.z_unl.codes.copy_(sample_normal(prior["mean"], prior["cov"], n_unlabelled,
                                             seed=cfg.seed + 2))
    freeze_discriminator(nets.disc)
    return prior


class Trainer:
    """One site's GLO run in a run folder.

    Parameters
    ----------
    cfg : the configuration
    data : the site's training volumes on ``chain.grid``
    chain : the site's :class:`~fedsim_app.models.generator.Generator`
    run_dir : where the config, metrics, PNGs and ``checkpoint.pt`` go
    progress : called as ``progress(phase, step, total, losses)`` after each step
    """

    def __init__(self, cfg: TrainConfig, data: SiteData, chain, run_dir: str | Path, *,
                 progress: Callable | None = None, vgg=None, shape_model=None):
        self.cfg, self.data, self.chain = cfg, data, chain
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.device = chain.device  # the networks, the data and the chain's tensors
        if self.device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels
            torch.backends.cudnn.benchmark = True
        self.nets = build_nets(cfg, data.n_labelled).to(self.device)
        self.nets.g_shape.ssm = shape_model  # the base SSM (None: the atlas); see site_chain
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.steps = GLOSteps(cfg, chain, self.nets, data, self.rng, vgg)
        self.phase, self.step = 1, 0
        self.prior: dict | None = None
        self.stop_requested = False
        self.stop_after: int | None = None  # total steps before stopping (tests)
        self.steps_done = 0
        self.seconds = {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0}
        self.log = RunLog(self.run_dir)
        self._build_optimizers()

    # -- optimisers ------------------------------------------------------------------------
    def _build_optimizers(self) -> None:
        self.opt = build_optimizers(self.nets, self.cfg)
        self.base_rates = base_rates(self.opt)

    def start_phase3(self) -> None:
        """Fit N(μ, Σ) to the labelled latents, draw the unlabelled ones, freeze D."""
        self.prior = start_phase3(self.nets, self.cfg, self.data.n_unlabelled)
        self._build_optimizers()

    def _freeze_disc(self) -> None:
        freeze_discriminator(self.nets.disc)

    # -- the loops ---------------------------------------------------------------------------
    def totals(self) -> dict[int, int]:
        return dict(enumerate(phase_steps(self.cfg, self.data.n_labelled,
                                          self.data.n_unlabelled), start=1))

    def run(self) -> None:
        """Train from the current position to the end (raises :class:`Interrupted`)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.toml").write_text(self.cfg.to_toml())
        if self.phase == 1:
            self.run_phase1()
        if self.phase == 2:
            self.run_phase2()
        if self.phase == 3:
            self.run_phase3()
        if self.phase == 4:
            self.run_phase4()

    def run_phase1(self) -> None:
        total = self.totals()[1]
        self._t_last = time.perf_counter()
        for s in range(self.step, total):
            set_rates(self.opt["phase1"], self.base_rates["phase1"],
                      lr_factor(s, total, self.cfg.constant_fraction))
            idx = torch.arange(self.data.n_labelled)
            init = {}
            if s == 0 and self.cfg.shape_init_steps:
                init = self.steps.run_shape_init(self.opt["phase1"], self.cfg.shape_init_steps)
            losses = {**self.steps.run_shape_material_step(idx, self.opt["phase1"]), **init}
            self._after_step(1, s, total, losses)
        calibrate_batchnorm(self.nets.g_material, self.nets.z_lab.codes, self.data.labels)
        self._end_phase(1)

    def run_phase2(self) -> None:
        total = self.totals()[2]
        self._t_last = time.perf_counter()
        if self.step == 0 and total:  # as a federated site does at its first phase-2 round
            self.steps.fit_enhancer_skip()
        self._gan_steps(2, total)
        self._end_phase(2)

    def _gan_steps(self, phase: int, total: int) -> None:
        """Phase 2's (and 4's) loop: a discriminator and an enhancer step per labelled
        volume, from the current step on."""
        scale = gan_rate_scale(self.cfg, phase)
        for s in range(self.step, total):
            f = scale * lr_factor(s, total, self.cfg.constant_fraction)
            set_rates(self.opt["disc"], self.base_rates["disc"], f)
            set_rates(self.opt["enhancer"], self.base_rates["enhancer"], f)
            idx = torch.tensor([s % self.data.n_labelled])
            losses = self.steps.run_gan_step(idx, self.opt["disc"], self.opt["enhancer"])
            self._after_step(phase, s, total, losses)

    def run_phase3(self) -> None:
        total = self.totals()[3]
        self._t_last = time.perf_counter()
        if self.step == 0 and self.nets.z_unl is None and total:
            self.start_phase3()
        for s in range(self.step, total):
            f = lr_factor(s, total, self.cfg.constant_fraction)
            if s % 2 == 0:
                set_rates(self.opt["labelled"], self.base_rates["labelled"], f)
                idx = torch.tensor([(s // 2) % self.data.n_labelled])
                losses = self.steps.run_labelled_step(idx, self.opt["labelled"])
            else:
                set_rates(self.opt["unlabelled"], self.base_rates["unlabelled"], f)
                idx = torch.tensor([(s // 2) % self.data.n_unlabelled])
                losses = {f"u_{k}": v for k, v in
                          self.steps.update_latents(idx, self.opt["unlabelled"]).items()}
            self._after_step(3, s, total, losses)
        if total:  # counted in phase 3's time (about 100 s at B with the cpu preset)
            self._calibrate(3)
        self._end_phase(3)

    def run_phase4(self) -> None:
        """Phase 2's GAN steps once more on the generators as they end (the
        discriminator trains again), then the enhancer's calibration again."""
        total = self.totals()[4]
        self._t_last = time.perf_counter()
        if total:
            unfreeze_discriminator(self.nets.disc)
        self._gan_steps(4, total)
        if total:
            self._calibrate(4)
        self._end_phase(4)

    def _calibrate(self, phase: int) -> None:
        self._t_last = time.perf_counter()
        self.steps.calibrate_enhancer(self.prior, self.cfg.level_refit_steps)
        self.seconds[phase] += time.perf_counter() - self._t_last

    # -- bookkeeping ---------------------------------------------------------------------
    def _after_step(self, phase: int, s: int, total: int, losses: dict) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._t_last
        self._t_last = now
        self.step = s + 1
        self.steps_done += 1
        self.log.log({"phase": phase, "step": s, **losses})
        if self.progress is not None:
            self.progress(phase, s + 1, total, losses)
        c = self.cfg
        if c.checkpoint_every and self.step % c.checkpoint_every == 0:
            self.save()
        if c.sample_every and self.step % c.sample_every == 0:
            self.write_samples()
        if self.stop_requested or (self.stop_after is not None
                                   and self.steps_done >= self.stop_after):
            raise Interrupted(self.save())

    def _end_phase(self, phase: int) -> None:
        self.phase, self.step = phase + 1, 0
        self.save()
        self.log.flush()
        self.write_samples()

    def write_samples(self) -> Path:
        return write_samples(self.run_dir / "samples.png", self.steps)

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(), "site": self.chain.site.key,
            "case_ids": list(self.data.case_ids), "n_labelled": self.data.n_labelled,
            "scan_fov_mm": list(self.data.fov_mm),
            "grid": {"shape": list(self.data.grid.shape),
                     "spacing_mm": list(self.data.grid.spacing_mm),
                     "origin_mm": list(self.data.grid.origin_mm)},
            "phase": self.phase, "step": self.step,
            "models": {k: m.state_dict() for k, m in self.nets.modules().items()},
            "shape_model": shape_model_state(self.nets.g_shape),
            "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
            "prior": self.prior, "rng": rng_state(self.rng),
            "seconds": {str(k): v for k, v in self.seconds.items()},
        }

    def save(self, path: str | Path | None = None) -> Path:
        return save_checkpoint(self.run_dir / CHECKPOINT if path is None else path,
                               self.state_dict())

    def load(self, path: str | Path) -> None:
        """Continue from a checkpoint of this run (same config and data)."""
        state = load_checkpoint(path)
        if state["case_ids"] != list(self.data.case_ids) or \
                state["n_labelled"] != self.data.n_labelled:
            from fedsim_app.train.checkpoint import CheckpointError

            raise CheckpointError(f"{path}: written for other training cases; resume with "
                                  "the same --data/--site and --labels, or start a new run")
        if "z_unl" in state["models"]:
            self.nets.z_unl = Latents(self.data.n_unlabelled,
                                      self.cfg.latent_dim).to(self.device)
            self._freeze_disc()
            self._build_optimizers()
        for k, m in self.nets.modules().items():
            m.load_state_dict(state["models"][k])
        for k, o in self.opt.items():
            o.load_state_dict(state["optimizers"][k])
        self.prior = state["prior"]
        self.phase, self.step = int(state["phase"]), int(state["step"])
        if is_finished(state):  # one from before phase 4 existed stays finished
            self.phase, self.step = DONE, 0
        elif self.phase == 4:
            unfreeze_discriminator(self.nets.disc)
        self.seconds = {**{k: 0.0 for k in self.seconds},
                        **{int(k): float(v) for k, v in state["seconds"].items()}}
        restore_rng(state["rng"], self.rng)
        if self.phase > 1:  # BatchNorm statistics were calibrated at the end of phase 1
            self.nets.g_material.eval()
        self.log.truncate(self.phase, self.step)
