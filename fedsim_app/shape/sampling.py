"""Random shape parameters: sampled into a record, then decoded deterministically."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fedsim_app.shape.params import N_MODES, N_PARAMS, ParamRanges


@dataclass(frozen=True)
class ShapeSampler:
    """Distribution of the 21 normalised parameters.

    Mode weights follow ``b_i ~ N(0, λ_i)`` clamped at ``±mode_sd·sqrt(λ_i)``, i.e.
    ``p_i = clip(N(0, 1) / mode_sd, -1, 1)``; the rigid parameters are
    ``clip(N(0, rigid_sd), -1, 1)``.
    """

    rigid_sd: float = 0.4
    ranges: ParamRanges = ParamRanges()

    def sample(self, rng: np.random.Generator | int, n: int = 1) -> np.ndarray:
        """(n, 21) parameters in [-1, 1]."""
        rng = np.random.default_rng(rng)
        z = rng.standard_normal((n, N_PARAMS))
        p = np.empty_like(z)
        p[:, :N_MODES] = z[:, :N_MODES] / self.ranges.mode_sd
        p[:, N_MODES:] = z[:, N_MODES:] * self.rigid_sd
        return np.clip(p, -1.0, 1.0)

    def to_dict(self) -> dict:
        return {"rigid_sd": self.rigid_sd, "ranges": asdict(self.ranges)}
