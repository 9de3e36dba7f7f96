"""A site enhancer retrained alone (phase 2) on a trained model's other parts, then scored.

Run: .venv/bin/python benchmarks/enhancer_phase2.py [--checkpoint PATH|default] [--site B]
         [--set '{"enhancer_width": 16}'] [--seeds 0,1,2] [--no-calibrate]
         [--cohort build/cohort]

Takes the site's G_shape, G_material and latents from the checkpoint, builds a fresh
enhancer and discriminator from the checkpoint's config with the ``--set`` overrides (any
``TrainConfig`` field: ``enhancer_width``, ``spade_hidden``, ``phase2_epochs``, ``lr_gan``,
``w_adv``, ``w_fm``, ``w_l1``, …), runs phase 2 exactly as ``fedsim train`` does (the
enhancer's label-wise skip fitted, then a discriminator and a generator step per labelled
volume and epoch, the preset's rates and decay) and prints
``benchmarks/train_quality.py``'s line for the site. Phase 3 is not run: the figure is the
enhancer of the labelled phases alone. Its end-of-training calibration is: where the config
asks for one (``enhancer_levels = "coarse"``, ``texture_calibration``) the level shift and
texture gains are fitted as at phase 3's end (:meth:`GLOSteps.calibrate_enhancer`), so the
line compares with the checkpoint's own (``--no-calibrate``: the bare phase 2, as entries
before 2026-12-06 measured it).

``--seeds``: train one enhancer per seed (the config's ``seed``: the networks' start, the
slice picks and the texture draws), each scored as above, then a line with the spread of
the noise ratio and the two-sample test over them: what one training's figures say about
the next.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from enhancer_levels import site_data  # benchmarks/, beside this file

from fedsim_app.assets import asset_path
from fedsim_app.sites import get_site
from fedsim_app.train.glo import base_rates, build_nets, build_optimizers
from fedsim_app.train.model_io import load_site_models
from fedsim_app.train.quality import evaluate_site
from fedsim_app.train.schedule import lr_factor, set_rates
from fedsim_app.train.steps import GLOSteps


def train_phase2(model, chain, train, test, seed: int, *, calibrate: bool):
    """``(quality, phase-2 seconds)`` of a fresh enhancer and discriminator trained from
    ``seed`` on ``model``'s other parts (``model.nets`` keeps them)."""
    cfg = model.config.replace(seed=seed)
    fresh = build_nets(cfg, model.n_labelled)
    model.nets.enhancer, model.nets.disc = fresh.enhancer, fresh.disc
    rng = torch.Generator().manual_seed(cfg.seed + 1)
    steps = GLOSteps(cfg, chain, model.nets, train, rng)
    opt = build_optimizers(model.nets, cfg)
    rates = base_rates(opt)
    total = cfg.phase2_epochs * model.n_labelled
    model.nets.enhancer.train()
    t0 = time.perf_counter()
    steps.fit_enhancer_skip()
    for s in range(total):  # as Trainer.run_phase2
        f = lr_factor(s, total, cfg.constant_fraction)
        set_rates(opt["disc"], rates["disc"], f)
        set_rates(opt["enhancer"], rates["enhancer"], f)
        idx = torch.tensor([s % model.n_labelled])
        steps.run_gan_step(idx, opt["disc"], opt["enhancer"])
    seconds = time.perf_counter() - t0
    model.nets.enhancer.eval()
    if calibrate:  # as phase 3's end (Trainer.run_phase3)
        steps.calibrate_enhancer(model.prior, cfg.level_refit_steps)
    return evaluate_site(model, train, test), seconds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--site", default="B")
    ap.add_argument("--set", default="{}", help="JSON object of TrainConfig overrides")
    ap.add_argument("--seeds", default=None,
                    help="comma-separated training seeds (default: the config's)")
    ap.add_argument("--no-calibrate", action="store_true",
                    help="score the enhancer as phase 2 leaves it")
    ap.add_argument("--cohort", default="build/cohort")
    args = ap.parse_args()
    path = (asset_path("checkpoints", "default.pt", must_exist=False)
            if args.checkpoint == "default" else Path(args.checkpoint))
    folder = Path(args.cohort) / get_site(args.site).dataset.folder
    if not path.is_file() or not folder.is_dir():
        # `make bench` runs every benchmark: no model or cohort yet is a skip
        print(f"skipped: needs {path} (make assets) and {folder} (fedsim cohort)")
        return 0
    torch.set_num_threads(1)
    model = load_site_models(path)[args.site]
    model.config = model.config.replace(**json.loads(args.set))
    chain, train, test = site_data(args.cohort, args.site, model)
    chain.scanner.build()
    seeds = ([model.config.seed] if args.seeds is None
             else [int(x) for x in args.seeds.split(",")])
    results = []
    for seed in seeds:
        q, seconds = train_phase2(model, chain, train, test, seed,
                                  calibrate=not args.no_calibrate)
        results.append(q)
        print(f"set={args.set} seed={seed} phase2_s={seconds:.0f} {q.line()}", flush=True)
    if len(results) > 1:
        def spread(name):
            v = [getattr(q, name) for q in results]
            return f"{name}={sum(v) / len(v):.3f} [{min(v):.3f}-{max(v):.3f}]"

        print(f"over seeds {args.seeds}: {spread('noise_ratio')} {spread('c2st')} "
              f"{spread('enh_hu_err')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
