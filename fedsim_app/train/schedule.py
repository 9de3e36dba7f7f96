"""Learning-rate schedules: constant, then a linear decay to 0 (the paper's appendix)."""

from __future__ import annotations


def lr_factor(step: int, total: int, constant_fraction: float = 0.5) -> float:
    """Rate multiplier at ``step`` (0-based) of ``total``: 1 for the first
    ``constant_fraction·total`` steps, then linear to 0 at ``total``.

    >>> [lr_factor(s, 4) for s in range(4)]
    [1.0, 1.0, 1.0, 0.5]
    """
    if total <= 0:
        return 1.0
    flat = int(round(constant_fraction * total))
    if step < flat:
        return 1.0
    # the decay reaches 0 one step after the last: every step still learns something
    return max(0.0, (total - step) / (total - flat + 0.0))


def set_rates(optimizer, base_rates, factor: float) -> None:
    """Set each parameter group's rate to its base rate times ``factor``."""
    for group, base in zip(optimizer.param_groups, base_rates, strict=True):
        group["lr"] = base * factor
