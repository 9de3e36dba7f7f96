"""How hard is each world? The evaluation's U-Net, binary-heart Dice per site, both worlds.

Per site, cases ``0 .. --cases − 1`` rendered at ``--size``³ (fast) twice: in this world
and in the previous one. The previous world is the plain torso the same records render
in when their ``world`` field is empty (``CaseRecord.world = {}``, the path that replays
records written before the world existed): same heart, torso, contrast, noise seed and
scanner, none of the world's anatomy, texture, contrast timing, motion or artefacts.

``--folds``-fold cross-validation over the cases (fold k tests on cases i with
i mod folds = k and trains on the rest), with the evaluation's own protocol
(:mod:`fedsim_app.evaluate.unet`: MONAI 3-D U-Net, Dice + CE, random ``roi``³ patches,
windowing, sliding-window inference) at the ``quick`` network size and ``--steps`` steps,
no model selection. Every case is tested once per world, so the worlds compare case by
case: the table gives the mean Dice per world and the mean paired difference with its
standard error over the site's cases (and over all sites). Lower Dice: a harder world.

Run: nice -n 15 .venv/bin/python benchmarks/world_dice.py [--size 64] [--cases 12]
         [--folds 3] [--steps 300] [--sites ABC] [--seed 0]
(prints a Markdown table; last line: key=value figures)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from fedsim_app.cohort import render_case, sample_case
from fedsim_app.evaluate.metrics import dice_scores
from fedsim_app.evaluate.unet import PRESETS, make_unet, predict, train
from fedsim_app.sites import load_sites


def volumes(site, n_cases: int, size: int, world: bool):
    """(images HU, binary heart labels) of cases 0..n−1, each (N, size, size, size)."""
    images, masks = [], []
    for i in range(n_cases):
        rec = sample_case(site, i, size=size)
        if not world:
            rec = dataclasses.replace(rec, world={})
        image, label = render_case(rec)
        images.append(image.array)
        masks.append(label.array > 0)
    return np.stack(images).astype(np.float32), np.stack(masks)


def cross_validated_dice(images, masks, folds: int, cfg) -> np.ndarray:
    """Per-case test Dice (N,), each case predicted by the fold that did not train on it."""
    n = len(images)
    out = np.zeros(n)
    for k in range(folds):
        test = np.arange(n) % folds == k
        net = make_unet(cfg)
        net, _ = train(net, images[~test], masks[~test], cfg.steps, cfg, seed=cfg.seed + k)
        out[test] = dice_scores(predict(net, images[test], cfg), masks[test])
    return out


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = b - a
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--sites", default="ABC")
    ap.add_argument("--seed", type=int, default=0, help="the U-Nets' initialisation and patches")
    args = ap.parse_args()
    cfg = dataclasses.replace(PRESETS["quick"], steps=args.steps, seed=args.seed)
    sites = load_sites()
    figures = {}
    per_site = {}
    for key in args.sites:
        dice = {}
        for world in (False, True):
            t0 = time.perf_counter()
            images, masks = volumes(sites[key], args.cases, args.size, world)
            dice[world] = cross_validated_dice(images, masks, args.folds, cfg)
            name = "world" if world else "previous"
            print(f"  site {key} {name}: Dice per case {np.round(dice[world], 3).tolist()} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            figures[f"dice_{key}_{name}"] = float(dice[world].mean())
        per_site[key] = dice
        figures[f"diff_{key}"], figures[f"diff_se_{key}"] = _paired(dice[False], dice[True])
    print(f"\n{args.cases} cases per site at {args.size}^3, {args.folds}-fold, "
          f"{args.steps} steps, seed {args.seed}\n")
    print("| site | Dice, previous world | Dice, this world | this − previous (± s.e.) |")
    print("|---|---|---|---|")
    rows = list(per_site.items())
    if len(rows) > 1:
        rows.append(("all", {w: np.concatenate([d[w] for d in per_site.values()])
                             for w in (False, True)}))
    for key, dice in rows:
        diff, se = _paired(dice[False], dice[True])
        figures[f"diff_{key}"], figures[f"diff_se_{key}"] = diff, se
        print(f"| {key} | {dice[False].mean():.3f} ± {dice[False].std():.3f} | "
              f"{dice[True].mean():.3f} ± {dice[True].std():.3f} | {diff:+.3f} ± {se:.3f} |")
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
