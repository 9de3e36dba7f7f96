"""What sites and server exchange: the round plan, a site's update, and its validation.

A round is one step of the GLO schedule on every site (the paper's appendix §5: one
gradient step per client, averaged at the server). Phase 1 starts with the single-site
trainer's shape initialisation as rounds of their own (``shape_init``: G_shape towards the
SSM parameters each site fits to its own labels), then its rounds train shape and
material, phase 2 rounds train each site's enhancer and discriminator (local only: no
gradient leaves the site), phase 3 rounds alternate labelled and unlabelled steps.

A site sends exactly one :class:`SiteUpdate` per round: the gradients of the shared
parameters (``g_shape.*``, ``g_material.*``) and scalar losses. Nothing else leaves it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import torch

from fedsim_app.errors import FedSimError
from fedsim_app.train.schedule import lr_factor

SHARED_MODULES = ("g_shape", "g_material")
#: the step kinds whose losses reach the shared generators
SHARED_KINDS = ("shape_init", "shape_material", "labelled", "unlabelled")
KINDS = (*SHARED_KINDS, "gan")
#: the optimiser a step kind uses (its own name unless given): the shape initialisation
#: steps with phase 1's, as ``fedsim train`` does
OPTIMIZER = {"shape_init": "shape_material"}


#: the shared generators a step kind trains (all of them unless given): the shape
#: initialisation leaves G_material, its optimiser state included, as it is
TRAINS = {"shape_init": ("g_shape",)}


def optimizer_of(kind: str) -> str:
    """The name of the optimiser (server's and site's) that steps a ``kind`` round."""
    return OPTIMIZER.get(kind, kind)


def trains(kind: str, name: str) -> bool:
    """Whether a ``kind`` round trains the shared parameter ``name`` (``module.param``)."""
    return name.split(".", 1)[0] in TRAINS.get(kind, SHARED_MODULES)


class UpdateRejected(FedSimError):
    """A site's update that must not reach the average (the message names the site)."""


@dataclass(frozen=True)
class RoundTask:
    """What the server asks of every site in round ``round`` (0-based)."""

    round: int
    phase: int
    step: int  # the step within the phase
    total: int  # rounds of this phase
    kind: str
    lr_factor: float
    #: differential privacy (see :mod:`~fedsim_app.federated.dp`): the L2 norm a site
    #: clips its gradients to and the std of the noise it adds (0, 0: off)
    dp_clip: float = 0.0
    dp_noise: float = 0.0

    @property
    def shared(self) -> bool:
        return self.kind in SHARED_KINDS

    def to_dict(self) -> dict:
        return {"round": self.round, "phase": self.phase, "step": self.step,
                "total": self.total, "kind": self.kind, "lr_factor": self.lr_factor,
                "dp_clip": self.dp_clip, "dp_noise": self.dp_noise}

    @classmethod
    def from_dict(cls, d: dict) -> RoundTask:
        return cls(int(d["round"]), int(d["phase"]), int(d["step"]), int(d["total"]),
                   str(d["kind"]), float(d["lr_factor"]), float(d.get("dp_clip", 0.0)),
                   float(d.get("dp_noise", 0.0)))


@dataclass(frozen=True)
class RoundPlan:
    """Rounds per phase and the rate schedule within each phase; the first
    ``shape_init`` rounds of phase 1 initialise G_shape (at the full rate), the rest of
    phase 1 follows its rate schedule."""

    phase_rounds: tuple[int, int, int, int]
    constant_fraction: float = 0.5
    shape_init: int = 0

    def __post_init__(self) -> None:  # a plan of three phases is from before phase 4
        rounds = tuple(int(n) for n in self.phase_rounds)
        object.__setattr__(self, "phase_rounds", rounds + (0,) * (4 - len(rounds)))

    @property
    def total(self) -> int:
        return sum(self.phase_rounds)

    @property
    def shared_rounds(self) -> int:
        """Rounds that train the shared generators (phases 1 and 3)."""
        return self.phase_rounds[0] + self.phase_rounds[2]

    def task(self, r: int) -> RoundTask:
        """The task of round ``r`` (0 ≤ r < total)."""
        if not 0 <= r < self.total:
            raise ValueError(f"round {r} outside the plan's 0..{self.total - 1}")
        start = 0
        for phase, n in enumerate(self.phase_rounds, start=1):
            if r < start + n:
                s = r - start
                if phase == 1 and s < self.shape_init:
                    return RoundTask(r, 1, s, n, "shape_init", 1.0)
                kind = {1: "shape_material", 2: "gan", 4: "gan"}.get(
                    phase, "labelled" if s % 2 == 0 else "unlabelled")
                skip = self.shape_init if phase == 1 else 0
                return RoundTask(r, phase, s, n, kind,
                                 lr_factor(s - skip, n - skip, self.constant_fraction))
            start += n
        raise AssertionError("unreachable")

    def to_dict(self) -> dict:
        return {"phase_rounds": list(self.phase_rounds),
                "constant_fraction": self.constant_fraction, "shape_init": self.shape_init}

    @classmethod
    def from_dict(cls, d: dict) -> RoundPlan:
        return cls(tuple(d["phase_rounds"]), float(d["constant_fraction"]),
                   int(d.get("shape_init", 0)))


def plan_rounds(cfg, sizes: list[tuple[int, int]], rounds: int | None = None) -> RoundPlan:
    """The plan for sites of ``sizes`` ``[(n_labelled, n_unlabelled), ...]``.

    Without ``rounds`` each phase has as many rounds as the largest site's single-site
    run has steps, phase 1 first ``cfg.shape_init_steps`` shape initialisation rounds (so
    one site alone trains exactly as ``fedsim train``); with ``rounds`` that many rounds
    are shared out over the phases in the same proportions (largest remainder), each phase
    with steps getting at least one when ``rounds`` allows, and the shape initialisation
    keeps its share of phase 1 (never all of it).
    """
    from fedsim_app.train.glo import phase_steps

    steps = phase_steps(cfg, max(s[0] for s in sizes), max(s[1] for s in sizes))
    init = int(cfg.shape_init_steps) if steps[0] else 0
    full = (steps[0] + init, *steps[1:])
    if rounds is None:
        return RoundPlan(full, cfg.constant_fraction, init)
    if rounds < 1:
        raise FedSimError(f"--rounds must be 1 or more, got {rounds}")
    total = sum(full)
    exact = [rounds * n / total for n in full]
    share = [math.floor(x) for x in exact]
    for i in sorted(range(len(full)), key=lambda i: exact[i] - share[i], reverse=True):
        if sum(share) == rounds:
            break
        share[i] += 1
    # a phase that has work keeps at least one round, taken from the largest
    for i in range(len(full)):
        if full[i] and not share[i] and rounds >= sum(1 for n in full if n):
            j = max(range(len(full)), key=lambda k: share[k])
            share[j] -= 1
            share[i] += 1
    init_share = min(round(init * share[0] / full[0]), share[0] - 1) if full[0] else 0
    return RoundPlan(tuple(share), cfg.constant_fraction, max(init_share, 0))


@dataclass
class SiteUpdate:
    """One site's answer to one round: shared-parameter gradients and scalar losses."""

    site: str
    round: int
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_payload(self) -> dict:
        """The plain dict that goes over the wire (tensors, numbers, strings only)."""
        return {"site": self.site, "round": self.round,
                "grads": {k: v.detach().cpu().contiguous() for k, v in self.grads.items()},
                "metrics": {k: float(v) for k, v in self.metrics.items()}}

    @classmethod
    def from_payload(cls, d: dict) -> SiteUpdate:
        return cls(str(d["site"]), int(d["round"]), dict(d["grads"]), dict(d["metrics"]))

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save(self.to_payload(), buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SiteUpdate:
        return cls.from_payload(torch.load(io.BytesIO(data), weights_only=True))

    @property
    def nbytes(self) -> int:
        """Bytes of the gradients sent (4 per float32 value; the metrics are a few)."""
        return sum(v.numel() * v.element_size() for v in self.grads.values())


def pack(named: dict[str, torch.Tensor]) -> tuple[dict, torch.Tensor]:
    """Named float32 tensors as one flat tensor and its layout (names, value counts).

    Flower moves every tensor of a message as its own object, each fetched with waits
    that grow 1, 2, 4 s while the SuperNode is still getting it from the SuperLink; one
    tensor a message is what made Flower's rounds affordable (``docs/benchmarks.md``).
    """
    names = list(named)
    flat = (torch.cat([named[k].detach().reshape(-1).to(torch.float32) for k in names])
            if names else torch.zeros(0))
    return {"names": names, "sizes": [int(named[k].numel()) for k in names]}, flat


def unpack(layout: dict, flat: torch.Tensor, spec: dict) -> dict[str, torch.Tensor]:
    """The named tensors of :func:`pack`, shaped as ``spec`` (``{name: (shape, dtype)}``)
    says; a tensor whose name or size does not fit stays flat, for
    :func:`validate_update` (or the site) to refuse with its name."""
    names, sizes = list(layout["names"]), [int(n) for n in layout["sizes"]]
    if len(names) != len(sizes) or sum(sizes) != flat.numel():
        raise FedSimError(f"a packed message lists {len(names)} tensors of {sum(sizes)} "
                          f"values but carries {flat.numel()}")
    out = {}
    for k, part in zip(names, torch.split(flat, sizes), strict=True):
        shape = spec.get(k, (None,))[0]
        fits = shape is not None and math.prod(shape) == part.numel()
        out[k] = part.reshape(shape).clone() if fits else part.clone()
    return out


def tensor_spec(named: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """``{name: (shape, dtype)}`` of the shared parameters, what every update must match."""
    return {k: (tuple(v.shape), v.dtype) for k, v in named.items()}


def validate_update(update: SiteUpdate, spec: dict, task: RoundTask) -> None:
    """Refuse an update that must not reach the average.

    Raises
    ------
    UpdateRejected
        naming the site and the problem: another round, an unexpected or missing
        tensor, a wrong shape or dtype, NaN/Inf values, a gradient on a local-only round,
        or a metric that is not a finite number.
    """
    who = f"site {update.site}"
    if update.round != task.round:
        raise UpdateRejected(f"{who}: update for round {update.round}, expected round "
                             f"{task.round}")
    for k, v in update.metrics.items():
        if not isinstance(k, str) or not isinstance(v, (int, float)) or isinstance(v, bool):
            raise UpdateRejected(f"{who}: metric {k!r} is not a number ({type(v).__name__})")
    if not update.grads:
        return
    if not task.shared:
        raise UpdateRejected(f"{who}: sent gradients in a local-only ({task.kind}) round")
    unexpected = sorted(set(update.grads) - set(spec))
    if unexpected:
        raise UpdateRejected(f"{who}: unexpected tensor(s) {', '.join(unexpected)}; only "
                             "the shared generators' gradients may be sent")
    missing = sorted(set(spec) - set(update.grads))
    if missing:
        raise UpdateRejected(f"{who}: missing gradient(s) {', '.join(missing[:3])}"
                             f"{' …' if len(missing) > 3 else ''}")
    for k, v in update.grads.items():
        shape, dtype = spec[k]
        if not isinstance(v, torch.Tensor):
            raise UpdateRejected(f"{who}: {k} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != shape:
            raise UpdateRejected(f"{who}: {k} has shape {tuple(v.shape)}, expected {shape}")
        if v.dtype != dtype:
            raise UpdateRejected(f"{who}: {k} has dtype {v.dtype}, expected {dtype}")
        if not torch.isfinite(v).all():
            raise UpdateRejected(f"{who}: {k} holds NaN or Inf values")
