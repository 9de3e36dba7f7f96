"""One site of the federation: the shared generators arrive, the local parts stay.

Shared: G_shape and G_material (their weights come from the server every round; their
gradients are all a site sends). Local: the latents, the enhancer, the discriminator,
their optimisers, the latents' prior, the training generator and, with ``shape_model``
other than ``"atlas"``, the SSM G_shape's output decodes in at this site (built from this
site's labelled volumes) — saved in the site's own state folder after every round and
never put in a message.

The steps are the single-site trainer's (:class:`~fedsim_app.train.steps.GLOSteps`); a
site only hands them optimisers over its local parameters, so the shared generators'
gradients are left in ``.grad`` for the server instead of being applied here.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import torch

from fedsim_app.errors import FedSimError
from fedsim_app.federated.dp import clip_and_noise, noise_generator
from fedsim_app.federated.protocol import SHARED_MODULES, RoundTask, SiteUpdate
from fedsim_app.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    shape_model_state,
)
from fedsim_app.train.config import TrainConfig
from fedsim_app.train.data import load_site_data
from fedsim_app.train.glo import (
    base_rates,
    build_nets,
    build_optimizers,
    calibrate_batchnorm,
    freeze_discriminator,
    gan_rate_scale,
    start_phase3,
    unfreeze_discriminator,
)
from fedsim_app.train.latents import Latents
from fedsim_app.train.schedule import set_rates
from fedsim_app.train.session import site_chain
from fedsim_app.train.steps import GLOSteps

LOCAL_STATE = "local.pt"
PREVIOUS_STATE = "local.prev.pt"


def site_latent_seed(seed: int, site: str) -> int:
    """The seed of site ``site``'s labelled latents in a run of ``seed``. Each site draws
    its own: with the run's seed alone every site's first volume would have the same
    latent, and the shared G_shape would be asked to map one z to three hospitals'
    different hearts (site A's shape IoU fell from 0.50 to 0.33 in 100 rounds so)."""
    return zlib.crc32(f"{seed}/latents/{site}".encode()) & 0x7FFFFFFF


def shared_parameters(nets) -> dict[str, torch.nn.Parameter]:
    """``{"g_shape.<name>": p, "g_material.<name>": p}``: the federation's parameters."""
    return {f"{m}.{k}": p for m in SHARED_MODULES
            for k, p in getattr(nets, m).named_parameters()}


class FedClient:
    """One hospital's side of the federation.

    Parameters
    ----------
    site : the :class:`~fedsim_app.sites.Site` (its scanner renders the coarse CT)
    cfg : the run's configuration (the server's)
    data_dir : this site's dataset folder, the only data it reads
    n_labelled : labelled training volumes of this site
    state_dir : where this site keeps its local state between rounds
    latent_seed : seed of the site's labelled latents (default
        :func:`site_latent_seed` of the run's seed and the site)
    build_matrix : build (or load from the cache) the coarse scanner's system matrix, as
        ``fedsim train`` does: each step is then one matmul instead of a projection and
        FDK, but the first build for a scanner takes minutes
    """

    def __init__(self, site, cfg: TrainConfig, data_dir: str | Path, n_labelled: int,
                 state_dir: str | Path, *, build_matrix: bool = True,
                 latent_seed: int | None = None):
        self.site, self.cfg = site, cfg
        self.latent_seed = (site_latent_seed(cfg.seed, site.key) if latent_seed is None
                            else int(latent_seed))
        self.state_dir = Path(state_dir)
        self.shape_model = self._shape_model(data_dir, n_labelled)
        self.chain = site_chain(site, cfg, ssm=self.shape_model)
        if build_matrix and cfg.coarse_matrix:
            self.chain.scanner.build()
        self.data = load_site_data(data_dir, self.chain.grid, n_labelled=n_labelled,
                                   frame=cfg.frame)
        self._fresh()
        self._dirty = False
        if (self.state_dir / LOCAL_STATE).is_file():
            self._load(self.state_dir / LOCAL_STATE)

    @property
    def key(self) -> str:
        return self.site.key

    @property
    def sizes(self) -> tuple[int, int]:
        return self.data.n_labelled, self.data.n_unlabelled

    # -- local parts -----------------------------------------------------------------------
    def _shape_model(self, data_dir, n_labelled: int):
        """The SSM this site decodes G_shape's output in (None: the atlas SSM): its saved
        one when resuming, else built from its labelled volumes (``cfg.shape_model``).
        Every site decodes in its own; the shared G_shape learns each site's parameters
        from that site's latents, as it learns each site's hearts."""
        import sys

        from fedsim_app.train.checkpoint import checkpoint_shape_model
        from fedsim_app.train.session import training_shape_model

        path = self.state_dir / LOCAL_STATE
        if path.is_file():
            state = load_checkpoint(path)
            if "shape_model" in state:
                return checkpoint_shape_model(state, path)

        def log(line: str) -> None:  # the skipped cases and the outcome, not every case
            if not line.startswith("registered "):
                print(f"site {self.key}: {line}", file=sys.stderr)

        return training_shape_model(data_dir, n_labelled, self.cfg, log=log)

    def _fresh(self) -> None:
        self.nets = build_nets(self.cfg, self.data.n_labelled, latent_seed=self.latent_seed)
        self.nets.g_shape.ssm = self.shape_model
        self._shape_targets: torch.Tensor | None = None  # from this site's labels
        self.rng = torch.Generator().manual_seed(self.cfg.seed + 1)
        self.steps = GLOSteps(self.cfg, self.chain, self.nets, self.data, self.rng)
        self.shared = shared_parameters(self.nets)
        self.prior: dict | None = None
        self.round_done = -1
        self.norm_stats: dict[str, torch.Tensor] | None = None  # G_material's, per site
        self._build_optimizers()

    def _build_optimizers(self) -> None:
        """The single-site trainer's optimisers over the local parameters only."""
        self.opt = build_optimizers(self.nets, self.cfg, generators=False)
        self.opt["shape_material"] = self.opt.pop("phase1")  # named as the protocol's step
        self.base_rates = base_rates(self.opt)

    def _start_phase3(self) -> None:
        """The site's prior over its own latents, its unlabelled latents, D frozen."""
        self.prior = start_phase3(self.nets, self.cfg, self.data.n_unlabelled)
        self._build_optimizers()

    def _calibrate_norms(self) -> None:
        """Phase 1 is over: G_material's BatchNorm statistics become those of this site's
        labelled latents under the shared weights, as ``fedsim train`` sets them at the end
        of phase 1. They are buffers, not parameters: they stay with the site (its latents
        are its own) and are saved in its local state."""
        calibrate_batchnorm(self.nets.g_material, self.nets.z_lab.codes, self.data.labels)
        self.norm_stats = {k: b.detach().clone()
                           for k, b in self.nets.g_material.named_buffers()}

    def _restore_norms(self, stats: dict[str, torch.Tensor]) -> None:
        buffers = dict(self.nets.g_material.named_buffers())
        with torch.no_grad():
            for k, b in stats.items():
                buffers[k].copy_(b)
        self.nets.g_material.eval()
        self.norm_stats = {k: b.clone() for k, b in stats.items()}

    def _freeze_disc(self) -> None:
        freeze_discriminator(self.nets.disc)

    def local_modules(self) -> dict[str, torch.nn.Module]:
        return {k: m for k, m in self.nets.modules().items() if k not in SHARED_MODULES}

    @torch.no_grad()
    def view(self, z: torch.Tensor):
        """Latent ``z`` (1, 32) through this site as its networks stand: the mid-axial
        (generated labels, coarse CT upsampled, enhanced) slices, each (H, W), as the
        trainer's sample grid draws them (no training state is touched)."""
        from fedsim_app.train.samples import evaluating, mid_slices

        with evaluating(*self.nets.modules().values()):
            return mid_slices(self.steps, z, None)

    # -- shared parts ----------------------------------------------------------------------
    def set_shared(self, weights: dict[str, torch.Tensor]) -> None:
        """Load the server's shared weights (names and shapes must match exactly)."""
        if set(weights) != set(self.shared):
            odd = sorted(set(weights) ^ set(self.shared))
            raise FedSimError(f"site {self.key}: the server's weights do not match this "
                              f"site's generators ({', '.join(odd[:3])}); use the same "
                              "FedSim version and preset on server and sites")
        with torch.no_grad():
            for k, p in self.shared.items():
                p.copy_(weights[k])

    # -- one round -------------------------------------------------------------------------
    def train_round(self, task: RoundTask, weights: dict[str, torch.Tensor]) -> SiteUpdate:
        """Take this round's step on the site's data with the server's ``weights``.

        Returns the gradients of the shared parameters (empty on local-only rounds) and
        the step's losses. The local state is saved before returning.
        """
        self._position_for(task.round)
        self._dirty = True  # until the step finished and the state is saved
        self.set_shared(weights)
        for p in self.shared.values():
            p.grad = None
        metrics = self._run_step(task)
        grads = {}
        if task.shared and metrics:
            grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
                     for k, p in self.shared.items()}
            if task.dp_clip > 0:
                grads = clip_and_noise(grads, task.dp_clip, task.dp_noise,
                                       noise_generator(self.cfg.seed, self.key, task.round))
        self.round_done = task.round
        self.save()
        self._dirty = False
        return SiteUpdate(self.key, task.round, grads, metrics)

    def _run_step(self, task: RoundTask) -> dict[str, float]:
        s, d, st = task.step, self.data, self.steps

        def rated(name, scale=1.0):
            set_rates(self.opt[name], self.base_rates[name], scale * task.lr_factor)
            return self.opt[name]

        if task.kind == "shape_init":  # phase 1's start, as ``fedsim train``'s
            if self._shape_targets is None:  # the SSM fitted to this site's labels
                self._shape_targets = st.shape_fit_targets()
            return st.run_shape_init(rated("shape_material"), 1, self._shape_targets)
        if task.kind == "shape_material":  # every labelled volume, as ``fedsim train``
            return st.run_shape_material_step(torch.arange(d.n_labelled),
                                              rated("shape_material"))
        if self.norm_stats is None:
            self._calibrate_norms()
        if task.kind == "gan":
            if s == 0 and task.phase == 2:  # phase 2's start, as ``fedsim train``'s
                st.fit_enhancer_skip()
            if task.phase == 4:  # phase 4 trains D again (after phase 3 froze it)
                unfreeze_discriminator(self.nets.disc)
            scale = gan_rate_scale(self.cfg, task.phase)
            idx = torch.tensor([s % d.n_labelled])
            losses = st.run_gan_step(idx, rated("disc", scale), rated("enhancer", scale))
            if task.phase == 4 and s == task.total - 1:  # as ``fedsim train``'s phase 4
                st.calibrate_enhancer(self.prior, self.cfg.level_refit_steps)
            return losses
        if self.nets.z_unl is None:
            self._start_phase3()
        if task.kind == "labelled":
            losses = st.run_labelled_step(torch.tensor([(s // 2) % d.n_labelled]),
                                          rated("labelled"))
        elif not d.n_unlabelled:
            losses = {}  # a site without unlabelled volumes sits this round out
        else:
            losses = {f"u_{k}": v for k, v in st.update_latents(
                torch.tensor([(s // 2) % d.n_unlabelled]), rated("unlabelled")).items()}
        if s == task.total - 1:  # phase 3's end, as ``fedsim train``'s (the shared
            # generators as this round received them: the server's last update, at the
            # schedule's smallest rate, comes after)
            st.calibrate_enhancer(self.prior, self.cfg.level_refit_steps)
        return losses

    def _position_for(self, r: int) -> None:
        """Bring the local state to the one round ``r`` must start from.

        A site that missed rounds (dropped out) continues from its own last round. A
        round the server repeats (it restarted before recording it) starts again from
        the state saved before this site's last round.
        """
        if self._dirty:  # the last round failed half-way: back to the saved state
            self._reload(self.state_dir / LOCAL_STATE)
        if self.round_done < r:
            return
        prev = self.state_dir / PREVIOUS_STATE
        if self.round_done == r:
            self._reload(prev)
        if self.round_done >= r:
            raise FedSimError(
                f"site {self.key}: its local state is at round {self.round_done + 1}, the "
                f"server asks for round {r + 1} — resume the server from its latest "
                f"checkpoint, or start this site afresh (delete {self.state_dir})")

    # -- local state -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"site": self.key, "case_ids": list(self.data.case_ids),
                "n_labelled": self.data.n_labelled, "round_done": self.round_done,
                "scan_fov_mm": list(self.data.fov_mm),
                "models": {k: m.state_dict() for k, m in self.local_modules().items()},
                "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
                "prior": self.prior, "rng": self.rng.get_state(),
                "norm_stats": self.norm_stats,
                "shape_model": shape_model_state(self.nets.g_shape),
                # which run this state belongs to: a bundle refuses another run's server
                "config": self.cfg.to_dict()}

    def save(self) -> Path:
        """Write the local state atomically, keeping the one before it."""
        path = self.state_dir / LOCAL_STATE
        if path.is_file():
            os.replace(path, self.state_dir / PREVIOUS_STATE)
        return save_checkpoint(path, self.state_dict())

    def _reload(self, path: Path) -> None:
        self._fresh()
        if path.is_file():
            self._load(path)
        self._dirty = False

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        if state.get("site") != self.key or state["case_ids"] != list(self.data.case_ids) \
                or state["n_labelled"] != self.data.n_labelled:
            raise CheckpointError(f"{path}: local state of another site or other training "
                                  f"cases than site {self.key}'s; point the site at its own "
                                  "state folder, or delete it to start this site afresh")
        if "z_unl" in state["models"]:
            self.nets.z_unl = Latents(self.data.n_unlabelled, self.cfg.latent_dim)
            self._freeze_disc()
            self._build_optimizers()
        for k, m in self.local_modules().items():
            m.load_state_dict(state["models"][k])
        for k, o in self.opt.items():
            o.load_state_dict(state["optimizers"][k])
        self.prior = state["prior"]
        if state.get("norm_stats") is not None:
            self._restore_norms(state["norm_stats"])
        self.round_done = int(state["round_done"])
        self.rng.set_state(state["rng"])
