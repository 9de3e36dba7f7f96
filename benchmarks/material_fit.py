"""G_material alone on one site: how well it fits its labelled volumes and a held-out one.

Run: .venv/bin/python benchmarks/material_fit.py [--site B] [--first learnt|nearest]
         [--no-labels] [--steps 200] [--seed 0] [--cohort build/cohort]

A fresh G_material and one latent per labelled training volume (the site's budget at the
``cpu`` preset's grids) are fitted by Adam (1e-3, the preset's phase-1 rate) on the coarse
MSE through the site's coarse scanner: phase 1 without the shape. Then, as
``benchmarks/train_quality.py`` does (fedsim_app/train/quality.py): BatchNorm calibrated on
the latents, ``insample``: worst structure's mean |Δ HU| of the coarse CT of the labelled
volumes; ``heldout``: the same on the test split with latents fitted to each test volume.

The variants are the two measured departures from the paper's generator:

- ``--first nearest``: the paper's nearest ×4 of the 1³ code instead of the learnt
  projection;
- ``--no-labels``: every voxel is surroundings (all-background labels), so the map is
  G_material(z) alone, as in the paper.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fedsim_app.models.g_material import MaterialGenerator, up_conv_block
from fedsim_app.models.generator import coarse_target
from fedsim_app.models.losses import structure_mean_loss
from fedsim_app.models.material import coarse_label_masks, coarse_labels
from fedsim_app.sites import get_site
from fedsim_app.train.config import preset
from fedsim_app.train.data import LABEL_BUDGETS, load_site_data
from fedsim_app.train.glo import calibrate_batchnorm
from fedsim_app.train.latents import Latents
from fedsim_app.train.quality import HU, fit_latents, worst_structure_error
from fedsim_app.train.session import site_chain


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", default="B")
    ap.add_argument("--cohort", default="build/cohort")
    ap.add_argument("--first", choices=("learnt", "nearest"), default="learnt")
    ap.add_argument("--no-labels", action="store_true")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--w-smean", type=float, default=None,
                    help="weight of the structure-mean term (default: the cpu preset's)")
    args = ap.parse_args()
    folder = Path(args.cohort) / get_site(args.site).dataset.folder
    if not folder.is_dir():
        # `make bench` runs every benchmark: no cohort yet is a skip, not a failure
        print(f"skipped: {folder}: no cohort (fedsim cohort --out {args.cohort} --size 64 "
              "--seed 0)")
        return 0
    torch.set_num_threads(1)
    cfg = preset("cpu", seed=args.seed)
    if args.w_smean is not None:
        cfg = cfg.replace(w_smean=args.w_smean)
    chain = site_chain(args.site, cfg)
    chain.scanner.build()
    n_lab = LABEL_BUDGETS[args.site][0]
    train = load_site_data(folder, chain.grid, n_labelled=n_lab, frame=cfg.frame)
    test = load_site_data(folder, chain.grid, n_labelled=0, subset="test", frame=cfg.frame)
    s = cfg.material_size

    def given(labels):  # what G_material is told
        return torch.zeros_like(labels) if args.no_labels else labels

    torch.manual_seed(args.seed)
    g = MaterialGenerator(cfg.latent_dim, s)
    if args.first == "nearest":
        g.surroundings[0] = up_conv_block(cfg.latent_dim, 256, 4)
    z = Latents(n_lab, cfg.latent_dim, seed=args.seed)
    target = coarse_target(train.images[:n_lab] * HU, s)
    masks = coarse_label_masks(train.labels, s)
    opt = torch.optim.Adam([*g.parameters(), *z.parameters()], lr=cfg.lr_phase1)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        opt.zero_grad()
        coarse = chain.coarse_ct(chain.mu(g(z.codes, given(train.labels)))) / HU
        loss = F.mse_loss(coarse, target / HU)
        (cfg.w_mse * loss
         + cfg.w_smean * structure_mean_loss(coarse, target / HU, masks)).backward()
        opt.step()
    fit_s = time.perf_counter() - t0
    calibrate_batchnorm(g, z.codes, given(train.labels))
    with torch.no_grad():
        coarse = chain.coarse_ct(chain.mu(g(z.codes, given(train.labels))))
    insample = worst_structure_error(zip(coarse, target, coarse_labels(train.labels, s),
                                         strict=True))
    init = z.codes.detach().mean(0).expand(len(test.images), -1)
    z_test = fit_latents(chain, g, test.images, given(test.labels), init,
                         w_smean=cfg.w_smean / cfg.w_mse)
    with torch.no_grad():
        coarse_t = chain.coarse_ct(chain.mu(g(z_test, given(test.labels))))
    target_t = coarse_target(test.images * HU, s)
    heldout = worst_structure_error(zip(coarse_t, target_t, coarse_labels(test.labels, s),
                                        strict=True))
    print(f"site={args.site} first={args.first} labels={not args.no_labels} "
          f"steps={args.steps} mse={loss.item():.4f} insample={insample:.0f} "
          f"heldout={heldout:.0f} "
          f"heldout_mse={F.mse_loss(coarse_t / HU, target_t / HU).item():.4f} "
          f"fit_s={fit_s:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
