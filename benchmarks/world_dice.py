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

Each run also says where the U-Net errs: the share of every structure's voxels it finds
and its false positives in bone, in vessels outside the labels and elsewhere.

Run: nice -n 15 .venv/bin/python benchmarks/world_dice.py [--size 64] [--cases 12]
         [--folds 3] [--steps 300] [--sites ABC] [--seed 0] [--worlds previous,world]
(prints a Markdown table; last line: key=value figures)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from fedsim_app.cohort import render_case, sample_case, scene_classes
from fedsim_app.evaluate.metrics import dice_scores
from fedsim_app.evaluate.unet import PRESETS, make_unet, predict, train
from fedsim_app.sites import load_sites

#: background groups a false positive can sit in: 1 bone, 2 blood vessels outside the labels
GROUPS = ("other", "bone", "vessel")


def background_groups(rec, labels: np.ndarray) -> np.ndarray:
    """(size³) uint8 background group of every voxel (0 inside the heart labels too)."""
    from fedsim_app.anatomy import Tissue
    from fedsim_app.anatomy.chest import WorldTissue as W

    if rec.world:
        from fedsim_app.cohort.world import world_scene

        classes = world_scene(rec, labels)[0]
        bone, vessel = (W.CORTICAL_BONE, W.MARROW, W.CARTILAGE), (
            W.AORTA, W.PULMONARY_ARTERY, W.PULMONARY_VEIN, W.SVC, W.IVC, W.CORONARY)
    else:
        classes = scene_classes(rec)[1]
        bone, vessel = (Tissue.SPINE, Tissue.RIBS, Tissue.STERNUM), ()
    out = np.where(np.isin(classes, bone), 1, np.where(np.isin(classes, vessel), 2, 0))
    out[labels > 0] = 0
    return out.astype(np.uint8)


def volumes(site, n_cases: int, size: int, world: bool):
    """Images (HU), label maps (internal codes) and background groups of cases 0..n−1.

    Each is (N, size, size, size); the heart is ``labels > 0``.
    """
    images, labels, groups = [], [], []
    for i in range(n_cases):
        rec = sample_case(site, i, size=size)
        if not world:
            rec = dataclasses.replace(rec, world={})
        image, label = render_case(rec)
        images.append(image.array)
        labels.append(label.array)
        groups.append(background_groups(rec, label.array))
    return np.stack(images).astype(np.float32), np.stack(labels), np.stack(groups)


def breakdown(pred: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Where a binary-heart prediction errs, averaged over cases.

    ``recall_<structure>``: share of the structure's voxels predicted heart;
    ``fp_<group>``: false-positive voxels in a background group per heart voxel.
    """
    from fedsim_app.io.labels_core import LABEL_OF

    out = {}
    for name, code in LABEL_OF.items():
        if code == 0:
            continue
        share = [p[lab == code].mean() for p, lab in zip(pred, labels, strict=True)
                 if (lab == code).any()]
        out[f"recall_{name}"] = float(np.mean(share))
    fp = pred & (labels == 0)
    heart = (labels > 0).sum(axis=(1, 2, 3))
    for g, name in enumerate(GROUPS):
        out[f"fp_{name}"] = float(np.mean((fp & (groups == g)).sum(axis=(1, 2, 3)) / heart))
    return out


def cross_validated_dice(images, masks, folds: int, cfg):
    """Per-case test Dice (N,) and the test predictions (N, Z, Y, X) bool.

    Each case is predicted by the fold that did not train on it.
    """
    n = len(images)
    out = np.zeros(n)
    preds = np.zeros(masks.shape, bool)
    for k in range(folds):
        test = np.arange(n) % folds == k
        net = make_unet(cfg)
        net, _ = train(net, images[~test], masks[~test], cfg.steps, cfg, seed=cfg.seed + k)
        preds[test] = np.asarray(predict(net, images[test], cfg)) != 0
        out[test] = dice_scores(preds[test], masks[test])
    return out, preds


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
    ap.add_argument("--worlds", default="previous,world",
                    help="which worlds to run (a table needs both)")
    args = ap.parse_args()
    cfg = dataclasses.replace(PRESETS["quick"], steps=args.steps, seed=args.seed)
    sites = load_sites()
    figures = {}
    per_site = {}
    for key in args.sites:
        dice = {}
        for world in (False, True):
            name = "world" if world else "previous"
            if name not in args.worlds.split(","):
                continue
            t0 = time.perf_counter()
            images, labels, groups = volumes(sites[key], args.cases, args.size, world)
            dice[world], preds = cross_validated_dice(images, labels > 0, args.folds, cfg)
            print(f"  site {key} {name}: Dice per case {np.round(dice[world], 3).tolist()} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            where = breakdown(preds, labels, groups)
            print(f"  site {key} {name}: " + " ".join(f"{k}={v:.3f}" for k, v in where.items()),
                  flush=True)
            figures[f"dice_{key}_{name}"] = float(dice[world].mean())
        if len(dice) < 2:
            continue
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
