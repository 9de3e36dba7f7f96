"""Differential privacy of the sites' updates (optional, ``--dp-epsilon``).

Site-level DP for FedSGD (McMahan et al. 2018, "DP-FedAvg"): in every round that trains
the shared generators, each site clips its gradient vector (all shared tensors together)
to L2 norm ``clip`` and adds Gaussian noise of standard deviation
``sigma * clip / sqrt(n_sites)``, so that the *sum* of the n sites' updates carries noise of
``sigma * clip`` — the Gaussian mechanism on a sum whose sensitivity to one site is
``clip`` — while no site's update is ever seen unclipped. (With secure aggregation the
server sees only that sum.) Every site takes part in every round (sampling rate 1), so the
privacy loss of ``T`` such rounds is ``T`` compositions of the Gaussian mechanism,
accounted with Opacus's RDP accountant.

The noise multiplier ``sigma`` is chosen from the target ``(epsilon, delta)`` and the
plan's number of shared rounds, so the run spends its budget exactly by its end; the
server refuses a round that would spend more. Noise is drawn from a generator seeded by
run seed, site and round: a run replays.

Caveat: a round some sites miss carries less noise than planned (their shares are
missing); the accountant does not know that, so the ε it reports is then optimistic.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import torch

from fedsim_app.errors import FedSimError


class BudgetSpent(FedSimError):
    """The next round would spend more than the run's privacy budget."""


@dataclass(frozen=True)
class DPConfig:
    """The privacy target of a run and the clipping norm of the sites' updates."""

    epsilon: float
    delta: float = 1e-5
    clip: float = 1.0

    def __post_init__(self):
        if not (self.epsilon > 0 and 0 < self.delta < 1 and self.clip > 0):
            raise FedSimError(f"differential privacy needs --dp-epsilon > 0, 0 < --dp-delta "
                              f"< 1 and --dp-clip > 0; got ε={self.epsilon}, "
                              f"δ={self.delta}, clip={self.clip}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> DPConfig | None:
        return None if not d else cls(float(d["epsilon"]), float(d["delta"]),
                                      float(d["clip"]))

    def noise_multiplier(self, rounds: int) -> float:
        """The smallest sigma that keeps ``rounds`` shared rounds within (ε, δ)."""
        from opacus.accountants.utils import get_noise_multiplier

        if rounds < 1:
            return 0.0
        return float(get_noise_multiplier(target_epsilon=self.epsilon,
                                          target_delta=self.delta, sample_rate=1.0,
                                          steps=int(rounds), accountant="rdp",
                                          epsilon_tolerance=0.005))


def spent(sigma: float, rounds: int, delta: float) -> float:
    """ε spent by ``rounds`` Gaussian mechanisms of noise multiplier ``sigma`` (RDP)."""
    from opacus.accountants import RDPAccountant

    if rounds < 1:
        return 0.0
    acc = RDPAccountant()
    acc.history = [(float(sigma), 1.0, int(rounds))]
    return float(acc.get_epsilon(delta=delta))


def noise_generator(seed: int, site: str, round_: int) -> torch.Generator:
    """The generator of one site's noise in one round (stable across processes)."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/{site}/{round_}".encode()))


def clip_and_noise(grads: dict[str, torch.Tensor], clip: float, noise_std: float,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The update a private site sends: ``grads`` scaled to L2 norm ≤ ``clip`` (all
    tensors as one vector), plus N(0, ``noise_std``²) on every value."""
    norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads.values()))
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    return {k: g * scale + noise_std * torch.randn(g.shape, generator=generator,
                                                   dtype=g.dtype)
            for k, g in grads.items()}
