"""Small trained-looking checkpoints for the latent mode's tests (no training run).

The ``smoke`` preset's networks, initialised from a seed, with a fitted prior (at a
finished run's phase, ``DONE``) and the enhancer's last layer made non-zero: an
untrained enhancer returns its input unchanged, and the tests must tell enhanced slices
from upsampled coarse ones.
"""

from __future__ import annotations

from pathlib import Path

import torch

CASES = ("c000", "c001", "c002", "c003")


def site_checkpoint(path: Path, site: str = "A", seed: int = 0, **overrides) -> Path:
    from fedsim_app.train.checkpoint import save_checkpoint
    from fedsim_app.train.config import preset
    from fedsim_app.train.glo import DONE, build_nets
    from fedsim_app.train.latents import fit_normal

    torch.manual_seed(seed)
    cfg = preset("smoke", seed=seed, **overrides)
    nets = build_nets(cfg, n_labelled=len(CASES))
    with torch.no_grad():
        tail = nets.enhancer.tail[1]
        tail.weight.normal_(0.0, 0.05)
        tail.bias.fill_(0.1)  # +100 HU everywhere it runs
        if nets.enhancer.uses_levels:
            nets.enhancer.level_shift.normal_(0.0, 0.05)
    mean, cov = fit_normal(nets.z_lab.codes)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, {
        "config": cfg.to_dict(), "site": site, "case_ids": [f"{site.lower()}{c}" for c in CASES],
        "n_labelled": len(CASES), "grid": None, "phase": DONE, "step": 0,
        "models": {k: m.state_dict() for k, m in nets.modules().items()},
        "optimizers": {}, "prior": {"mean": mean, "cov": cov}, "rng": {},
        "seconds": {"1": 1.0},
        # scans of 120 mm (a child's heart), as a frame = "case" run records them
        **({"scan_fov_mm": [120.0] * len(CASES)} if cfg.frame == "case" else {})})


def bundle(folder: Path, sites=("A", "B"), **overrides) -> Path:
    """A bundle (the default checkpoint's format) of ``sites`` (``overrides``: of their
    training configuration)."""
    from fedsim_app.train.model_io import write_bundle

    folder = Path(folder)
    runs = [site_checkpoint(folder / s / "checkpoint.pt", s, seed=i, **overrides)
            for i, s in enumerate(sites)]
    return write_bundle(runs, folder / "bundle.pt", half=False)
