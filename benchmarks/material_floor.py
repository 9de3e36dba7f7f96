"""The coarse scanner's floor: the best any material map can do, per site and grid.

Run: .venv/bin/python benchmarks/material_floor.py [--sites A,B,C] [--label-size 32]
         [--material-size 16] [--steps 300] [--cohort build/cohort]

For each held-out test volume of a site a *free* material map ``tanh(u)`` (one value per
coarse voxel, no generator) is fitted through the site's coarse scanner to the real
volume reduced to the coarse grid (Adam on the coarse MSE, the training loss), then
scored as ``benchmarks/train_quality.py`` scores the model's coarse CT
(``mat_hu_err``: worst structure's mean |Δ HU|, fedsim_app/train/quality.py). No trained
model can beat this figure at the same grids. Also printed:

- ``real_err``: the real coarse volume itself, as μ, put through the scanner (what the
  scanner's blur does to the truth);
- ``up_err``: the fitted coarse CT upsampled to the label grid against the real label-grid
  volume (what a do-nothing enhancer scores; the enhancer's starting point).

Without a cached system matrix the scanner runs diffct directly (a 32³ matrix would be
32768², 4 GiB: the 32³ grid never builds one here).
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fedsim_app.models.generator import ChainConfig, Generator, coarse_target, upsample_coarse
from fedsim_app.models.material import coarse_labels
from fedsim_app.sites import get_site
from fedsim_app.train.data import load_site_data
from fedsim_app.train.quality import HU, worst_structure_error


def site_floor(key: str, cohort: Path, label_size: int, material_size: int, steps: int,
               lr: float) -> str:
    gen = Generator(key, config=ChainConfig(label_size=label_size, coarse_size=material_size),
                    device="cpu")
    if material_size > 16:
        gen.scanner.ct.use_cache = False  # never build a 32³ matrix (4 GiB)
    test = load_site_data(cohort / get_site(key).dataset.folder, gen.grid, n_labelled=0,
                          subset="test")
    target = coarse_target(test.images * HU, material_size)  # (B, s, s, s) HU
    s = material_size
    labels = coarse_labels(test.labels, s)
    t0 = time.perf_counter()
    # start at the target itself as a material map (m = hu/1000, inside tanh's range)
    u = torch.atanh((target / HU).clamp(-0.99, 0.99))[:, None].requires_grad_()
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(gen.coarse_ct(gen.mu(torch.tanh(u))) / HU, target / HU)
        loss.backward()
        opt.step()
    fit_s = time.perf_counter() - t0
    with torch.no_grad():
        coarse = gen.coarse_ct(gen.mu(torch.tanh(u)))
        real_through = gen.coarse_ct(gen.mu(((target / HU).clamp(-1, 1))[:, None]))
        up = upsample_coarse(coarse, tuple(test.labels.shape[1:]))
    err = worst_structure_error(zip(coarse, target, labels, strict=True))
    real_err = worst_structure_error(zip(real_through, target, labels, strict=True))
    up_err = worst_structure_error(zip(up, test.images * HU, test.labels, strict=True))
    return (f"site={key} label_size={label_size} material_size={s} volumes={len(target)} "
            f"mse={loss.item():.4f} floor_err={err:.1f} real_err={real_err:.1f} "
            f"up_err={up_err:.1f} fit_s={fit_s:.0f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", default="A,B,C")
    ap.add_argument("--cohort", default="build/cohort")
    ap.add_argument("--label-size", type=int, default=32)
    ap.add_argument("--material-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()
    if not Path(args.cohort).is_dir():
        # `make bench` runs every benchmark: no cohort yet is a skip, not a failure
        print(f"skipped: {args.cohort}: no cohort (write one with `fedsim cohort` or "
              "`make assets`)")
        return 0
    for key in args.sites.split(","):
        print(site_floor(key, Path(args.cohort), args.label_size, args.material_size,
                         args.steps, args.lr), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
