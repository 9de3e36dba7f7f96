"""The server: FedSGD over the sites' shared-parameter gradients, one Adam step a round.

Every round the server validates each site's update (a bad one is rejected with the site
named and never averaged), averages the accepted gradients, applies its Adam step (one
optimiser per step kind, at the single-site trainer's rates and schedule) and writes the
round checkpoint atomically; the next round broadcasts the new weights. A round with
fewer than ``min_sites`` usable answers changes nothing and raises :class:`RoundFailed`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fedsim_app.errors import FedSimError
from fedsim_app.federated.client import shared_parameters
from fedsim_app.federated.dp import BudgetSpent, DPConfig, spent
from fedsim_app.federated.protocol import (
    RoundPlan,
    RoundTask,
    SiteUpdate,
    UpdateRejected,
    optimizer_of,
    tensor_spec,
    trains,
    validate_update,
)
from fedsim_app.io.atomic import atomic_path
from fedsim_app.train.checkpoint import CheckpointError
from fedsim_app.train.config import TrainConfig, from_dict
from fedsim_app.train.glo import build_nets
from fedsim_app.train.schedule import set_rates

FORMAT = "fedsim-federated-server"
FORMAT_VERSION = 3  # 3: the enhancer's label-wise skip; 2: G_material reads the labels
# (issue 9); older ones are refused
CHECKPOINT = "server.pt"
ROUND_LOG = "rounds.jsonl"


class RoundFailed(FedSimError):
    """Too few sites answered a round usefully; the shared weights are unchanged."""


@dataclass
class RoundResult:
    """What happened in one round (one line of ``rounds.jsonl``)."""

    task: RoundTask
    accepted: list[str]
    rejected: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: sites back after missing rounds: {site: the last round (0-based) they answered}
    rejoined: dict[str, int] = field(default_factory=dict)
    #: privacy spent so far (ε at the run's δ), None without differential privacy
    dp_epsilon: float | None = None

    def to_dict(self) -> dict:
        return {**self.task.to_dict(), "accepted": self.accepted, "rejected": self.rejected,
                "missing": self.missing, "metrics": self.metrics,
                "bytes_sent": self.bytes_sent, "seconds": round(self.seconds, 4),
                "rejoined": self.rejoined, "dp_epsilon": self.dp_epsilon}


class FedServer:
    """The shared generators, their optimisers and the round counter of one run.

    Parameters
    ----------
    cfg : the run's configuration (the shared generators are built from ``cfg.seed``
        exactly as a single-site run builds them)
    plan : rounds per phase
    sites : keys of the federation's sites
    run_dir : where ``server.pt`` and ``rounds.jsonl`` go (None: nothing is written)
    min_sites : fewest usable answers a round needs (default: all sites)
    dp : differential privacy of the sites' updates (None: off); the noise multiplier
        is set so the plan's shared rounds spend exactly ``dp.epsilon``
    """

    def __init__(self, cfg: TrainConfig, plan: RoundPlan, sites: list[str],
                 run_dir: str | Path | None, *, min_sites: int | None = None,
                 dp: DPConfig | None = None):
        self.cfg, self.plan, self.sites = cfg, plan, list(sites)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.min_sites = len(self.sites) if min_sites is None else int(min_sites)
        if not 1 <= self.min_sites <= len(self.sites):
            raise FedSimError(f"--min-sites must lie in 1..{len(self.sites)}, got "
                              f"{self.min_sites}")
        nets = build_nets(cfg, 1)  # the same initial generators a single site gets
        self.modules = {"g_shape": nets.g_shape, "g_material": nets.g_material}
        self.params = shared_parameters(nets)
        self.spec = tensor_spec({k: p.detach() for k, p in self.params.items()})
        shared = list(self.params.values())
        self.opt = {kind: torch.optim.Adam(shared, lr=lr) for kind, lr in (
            ("shape_material", cfg.lr_phase1), ("labelled", cfg.lr_labelled),
            ("unlabelled", cfg.lr_unlabelled))}
        self.base_rates = {k: [g["lr"] for g in o.param_groups] for k, o in self.opt.items()}
        self.round = 0  # the next round to run
        self.dp = dp
        self.dp_sigma = dp.noise_multiplier(plan.shared_rounds) if dp else 0.0
        self.dp_rounds = 0  # shared rounds released with noise so far
        self.last_seen: dict[str, int] = {}  # site -> last round it answered

    # -- rounds ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.round >= self.plan.total

    def next_task(self) -> RoundTask:
        """The next round's task (with the sites' clipping and noise under DP).

        Raises
        ------
        BudgetSpent
            when the round would take the privacy spent past the run's ε.
        """
        task = self.plan.task(self.round)
        if self.dp is None or not task.shared:
            return task
        after = spent(self.dp_sigma, self.dp_rounds + 1, self.dp.delta)
        if after > self.dp.epsilon * 1.001:
            raise BudgetSpent(f"round {task.round + 1} would spend ε = {after:.3g}, past the "
                              f"run's budget of {self.dp.epsilon:g}; the run stops here "
                              "(its checkpoint is current)")
        noise = self.dp_sigma * self.dp.clip / math.sqrt(len(self.sites))
        return dataclasses.replace(task, dp_clip=self.dp.clip, dp_noise=noise)

    @property
    def dp_spent(self) -> float | None:
        """ε spent so far at the run's δ (None without DP)."""
        return None if self.dp is None else spent(self.dp_sigma, self.dp_rounds,
                                                   self.dp.delta)

    def weights(self) -> dict[str, torch.Tensor]:
        """The shared weights to broadcast (copies)."""
        return {k: p.detach().clone() for k, p in self.params.items()}

    def aggregate(self, task: RoundTask, updates: list[SiteUpdate], *,
                  seconds: float = 0.0,
                  secure_mean: dict[str, torch.Tensor] | None = None) -> RoundResult:
        """Validate, average and apply one round's updates; checkpoint; advance.

        ``secure_mean``: the sites' mean gradient as secure aggregation (SecAgg+) gave
        it; ``updates`` then carry the sites' metrics only, and the mean is checked (names,
        shapes, dtypes, finite) and applied in place of their average.

        Raises
        ------
        RoundFailed
            when fewer than ``min_sites`` updates were accepted (nothing is applied).
        """
        if task.round != self.round:
            raise FedSimError(f"round {task.round + 1} aggregated, the server is at round "
                              f"{self.round + 1}")
        accepted, rejected, seen = [], {}, set()
        for u in updates:
            try:
                if u.site not in self.sites:
                    raise UpdateRejected(f"site {u.site}: not a site of this federation "
                                         f"({', '.join(self.sites)})")
                if u.site in seen:
                    raise UpdateRejected(f"site {u.site}: a second update in one round")
                validate_update(u, self.spec, task)
            except UpdateRejected as exc:
                rejected[u.site] = str(exc)
                continue
            seen.add(u.site)
            accepted.append(u)
        missing = [s for s in self.sites if s not in seen and s not in rejected]
        if len(accepted) < self.min_sites:
            why = "; ".join([*rejected.values(), *(f"site {s}: no answer" for s in missing)])
            raise RoundFailed(f"round {task.round + 1}: {len(accepted)} usable update(s), "
                              f"{self.min_sites} needed ({why}); the shared weights are "
                              "unchanged — resume when enough sites are back, or lower "
                              "--min-sites")
        # in the federation's site order, not arrival order: a float sum depends on its
        # order, and a run must not depend on which hospital answered first
        with_grads = sorted((u for u in accepted if u.grads),
                            key=lambda u: self.sites.index(u.site))
        if secure_mean is not None:
            with_grads = [self._checked_mean(task, secure_mean, accepted)]
        if task.shared and with_grads:
            self._apply(task, with_grads)
        if self.dp is not None and task.shared:
            self.dp_rounds += 1
        # a site that answered before but not in the round before this one was away; it
        # trained this round on the weights just broadcast, the federation's current ones
        rejoined = {u.site: self.last_seen[u.site] for u in accepted
                    if self.last_seen.get(u.site, task.round - 1) < task.round - 1}
        for u in accepted:
            self.last_seen[u.site] = task.round
        self.round += 1
        result = RoundResult(task, [u.site for u in accepted], rejected, missing,
                             {u.site: dict(u.metrics) for u in accepted},
                             {u.site: u.nbytes for u in updates}, seconds, rejoined,
                             self.dp_spent)
        if self.run_dir is not None:
            self.save()
            with open(self.run_dir / ROUND_LOG, "a") as fh:
                fh.write(json.dumps(result.to_dict()) + "\n")
        return result

    def _checked_mean(self, task: RoundTask, mean: dict, accepted: list[SiteUpdate]
                      ) -> SiteUpdate:
        who = "+".join(u.site for u in accepted)
        update = SiteUpdate(f"{who} (secure mean)", task.round, mean)
        try:
            validate_update(update, self.spec, task)
        except UpdateRejected as exc:
            raise RoundFailed(f"round {task.round + 1}: the securely aggregated mean is "
                              f"unusable ({exc}); the shared weights are unchanged") from exc
        return update

    def _apply(self, task: RoundTask, updates: list[SiteUpdate]) -> None:
        name = optimizer_of(task.kind)
        opt = self.opt[name]
        set_rates(opt, self.base_rates[name], task.lr_factor)
        for k, p in self.params.items():
            if not trains(task.kind, k):  # not this kind's: Adam passes it over
                p.grad = None
                continue
            # the mean of the sites' gradients (one step at an effective batch of n), as a
            # running mean: sites that agree give their gradient back bit for bit, which
            # matters because Adam's step barely depends on a gradient's size
            mean = updates[0].grads[k].clone()
            for i, u in enumerate(updates[1:], start=2):
                mean += (u.grads[k] - mean) / i
            p.grad = mean
        opt.step()
        for p in self.params.values():
            p.grad = None

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "config": self.cfg.to_dict(), "plan": self.plan.to_dict(),
                "sites": self.sites, "min_sites": self.min_sites, "round": self.round,
                "models": {k: m.state_dict() for k, m in self.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
                "last_seen": dict(self.last_seen),
                "dp": self.dp.to_dict() if self.dp else {}, "dp_rounds": self.dp_rounds}

    def save(self) -> Path:
        path = self.run_dir / CHECKPOINT
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        return path

    @classmethod
    def resume(cls, run_dir: str | Path, *, min_sites: int | None = None) -> FedServer:
        """The server of ``run_dir`` at its last recorded round."""
        run_dir = Path(run_dir)
        state = load_server_checkpoint(run_dir / CHECKPOINT)
        server = cls(from_dict(state["config"]), RoundPlan.from_dict(state["plan"]),
                     state["sites"], run_dir,
                     min_sites=state["min_sites"] if min_sites is None else min_sites,
                     dp=DPConfig.from_dict(state.get("dp")))
        for k, m in server.modules.items():
            m.load_state_dict(state["models"][k])
        for k, o in server.opt.items():
            o.load_state_dict(state["optimizers"][k])
        server.round = int(state["round"])
        server.dp_rounds = int(state.get("dp_rounds", 0))
        server.last_seen = {str(k): int(v) for k, v in state["last_seen"].items()}
        server._truncate_log()
        return server

    def _truncate_log(self) -> None:
        """Drop log lines of rounds after the checkpoint (they will run again)."""
        path = self.run_dir / ROUND_LOG
        if not path.is_file():
            return
        keep = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["round"] < self.round]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep))


def load_server_checkpoint(path: str | Path) -> dict:
    """Read ``server.pt`` (tensors and plain values only).

    Raises
    ------
    CheckpointError
        naming the file when it is missing, unreadable or not a federated server's.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no federated run to resume there — check the folder, "
                              "or start a new run")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"{path}: corrupt or unreadable server checkpoint ({msg}) — "
                              "start a new run") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a FedSim federated server checkpoint")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: server checkpoint version "
                              f"{data.get('format_version')}, this FedSim reads "
                              f"{FORMAT_VERSION} — finish it with the FedSim that wrote it")
    return data
