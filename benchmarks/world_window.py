"""What the evaluation's U-Net sees of each world: its intensity window, blood against bone.

The U-Net (:mod:`fedsim_app.evaluate.unet`) reads images clipped to [-200, 600] HU. Per
site, cases ``0 .. --cases − 1`` at ``--size``³ (`fast`) are rendered in the previous world
(the record with an empty ``world``), in this world with every tissue at the published
120-kVp CT numbers whatever the scanner (the world before its tissues followed the tube
voltage) and in this world as written (tissues at the scanner's energy). For each:

- ``blood``, ``myo``: median HU of the LV blood pool and LV myocardium labels; ``shell``:
  median HU of the non-heart voxels within two voxels of the heart (what its edge abuts);
  ``bone``: median HU over bone voxels;
  ``bone_sat``: share of bone voxels the window clips at 600 HU;
- ``bright_<group>``: background voxels at least as bright, inside the window, as the
  10th percentile of the heart's blood pools, per heart voxel (bone, vessels outside the
  labels, the rest): the bright non-heart volume a segmenter must tell from the heart;
- ``thr_dice``: the best Dice of one threshold on the windowed image against the binary
  heart (an intensity-only segmenter; higher: intensity alone separates the heart better).

Run: nice -n 15 .venv/bin/python benchmarks/world_window.py [--size 64] [--cases 4]
(prints a Markdown table; last line: key=value figures)
"""

from __future__ import annotations

import argparse
import dataclasses
from unittest import mock

import numpy as np
from scipy import ndimage

from fedsim_app.cohort import render_case, sample_case
from fedsim_app.evaluate.unet import window
from fedsim_app.io.labels_core import LABEL_OF
from fedsim_app.sites import load_sites

WORLDS = ("previous", "world at 120 kVp", "world")
BLOOD = [LABEL_OF[n] for n in ("lv_blood_pool", "rv", "la", "ra", "aorta", "pulmonary_artery")]


def render(rec, world: str):
    """(image HU, labels, groups) of a record in one of :data:`WORLDS`."""
    import importlib

    from world_dice import background_groups

    wmod = importlib.import_module("fedsim_app.cohort.world")
    if world == "previous":
        rec = dataclasses.replace(rec, world={})
    if world == "world at 120 kVp":
        with mock.patch.object(wmod, "hu_at_energy", lambda hu, mix, e: (float(hu), 1.0)):
            image, label = render_case(rec)
    else:
        image, label = render_case(rec)
    return image.array, label.array, background_groups(rec, label.array)


def measure(image, labels, groups) -> dict[str, float]:
    """The figures of one case (see the module docstring)."""
    heart = labels > 0
    bone = groups == 1
    w = window(image)
    level = np.percentile(w[np.isin(labels, BLOOD)], 10)
    bright = (w >= level) & ~heart
    # the heart's outer edge: non-heart voxels within two voxels of it (fat, mediastinum)
    shell = ndimage.binary_dilation(heart, iterations=2) & ~heart
    out = {"blood": float(np.median(image[labels == LABEL_OF["lv_blood_pool"]])),
           "myo": float(np.median(image[labels == LABEL_OF["lv_myocardium"]])),
           "shell": float(np.median(image[shell])),
           "bone": float(np.median(image[bone])), "bone_sat": float((image[bone] >= 600).mean())}
    for g, name in enumerate(("other", "bone", "vessel")):
        out[f"bright_{name}"] = float((bright & (groups == g)).sum() / heart.sum())
    best = 0.0
    for t in np.linspace(0.05, 0.95, 37):
        p = w > t
        best = max(best, 2 * (p & heart).sum() / (p.sum() + heart.sum()))
    out["thr_dice"] = float(best)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--sites", default="ABC")
    args = ap.parse_args()
    sites = load_sites()
    figures = {}
    print("| site | world | LV blood HU | LV myocardium HU | around the heart HU | bone HU "
          "(median) | bone ≥ 600 HU | bright bone / vessels / other per heart voxel | "
          "one-threshold Dice |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in args.sites:
        recs = [sample_case(sites[key], i, size=args.size) for i in range(args.cases)]
        for world in WORLDS:
            rows = [measure(*render(r, world)) for r in recs]
            m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            tag = world.replace(" ", "_")
            figures.update({f"{key}_{tag}_{k}": v for k, v in m.items()})
            print(f"| {key} | {world} | {m['blood']:.0f} | {m['myo']:.0f} | {m['shell']:.0f} | "
                  f"{m['bone']:.0f} | "
                  f"{m['bone_sat']:.2f} | {m['bright_bone']:.2f} / {m['bright_vessel']:.2f} / "
                  f"{m['bright_other']:.2f} | {m['thr_dice']:.3f} |", flush=True)
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
