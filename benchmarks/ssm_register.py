"""Template registration (`fedsim_app.shape.register`) on procedural label maps.

1. Every population (atlas, adult, chd-l, chd-m): ``--n`` hearts each (seeds 1000..),
   label maps at 1 mm isotropic in a scanner frame 40 mm away from the model's; the
   registered meshes' mean per-structure Dice and binary-heart IoU, folds and
   self-intersections, failing cases named. Targets: Dice ≥ 0.90, IoU ≥ 0.90.
2. A CT-sized map: 512×512×250, 0.45×0.45×0.8 mm, LAS, MM-WHS codes, a held-out adult
   heart; `fedsim ssm fit --refine --json` end to end (read included). Target ≤ 60 s.

Run: .venv/bin/python benchmarks/ssm_register.py [--n 3]   (last line: key=value figures)
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fedsim_app.anatomy import POPULATIONS, build_heart, sample_heart_params
from fedsim_app.io import Grid, Volume, from_internal, get_code_set, write_nifti
from fedsim_app.shape import load_atlas_ssm, register_labels, voxelize, voxelize_meshes


def population_maps(n: int) -> dict:
    model = load_atlas_ssm()
    out = {}
    for pop in POPULATIONS:
        rows = []
        for k in range(n):
            heart = build_heart(sample_heart_params(pop, 1000 + k))
            v = heart.stacked_vertices() + 40.0
            lo, hi = v.min(0) - 10, v.max(0) + 10
            grid = Grid.centered(tuple(int(x) for x in np.ceil(hi - lo)[::-1]), 1.0,
                                 tuple((lo + hi) / 2))
            labels = voxelize(model, v, grid)  # the anatomy meshes share the template's
            t0 = time.perf_counter()
            reg = register_labels(model, labels, grid)
            rows.append({"seed": 1000 + k, "s": time.perf_counter() - t0, **reg.to_dict()})
            fit_dice = np.mean(list(reg.fit.dice.values()))
            print(pop, 1000 + k, f"fit mean Dice {fit_dice:.3f}",
                  f"registered {reg.mean_dice:.3f} IoU {reg.binary_iou:.3f}",
                  f"folds {reg.flipped_faces} crossings {reg.self_intersections}",
                  f"{rows[-1]['s']:.1f} s", reg.failure or "ok", flush=True)
        out[pop] = rows
    return out


def ct_sized(tmp: Path) -> dict:
    heart = build_heart(sample_heart_params("adult", 12345))
    verts = heart.stacked_vertices()
    centre = tuple((verts.min(0) + verts.max(0)) / 2 + np.array([7.0, -5.0, 4.0]))
    grid = Grid.centered((250, 512, 512), (0.8, 0.45, 0.45), centre)
    labels = voxelize_meshes(heart, grid)
    mmwhs = from_internal(labels, get_code_set("mmwhs")).astype(np.int16)
    path = tmp / "case_label.nii.gz"
    write_nifti(Volume(mmwhs, grid, kind="label"), path, orientation="LAS")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fedsim_app", "ssm", "fit", str(path),
                          "--refine", "--json", "--out", str(tmp / "fit")],
                         capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    res = json.loads(out.stdout)
    return {"wall_s": wall, **res["registration"], "fit_mean_dice": res["mean_dice"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3, help="hearts per population")
    args = ap.parse_args()
    pops = population_maps(args.n)
    figures = []
    for pop, rows in pops.items():
        ok = [r for r in rows if r["ok"]]
        figures.append(f"{pop}_dice={np.mean([r['mean_dice'] for r in rows]):.3f}")
        figures.append(f"{pop}_iou={np.mean([r['binary_iou'] for r in rows]):.3f}")
        figures.append(f"{pop}_min_dice={min(r['mean_dice'] for r in rows):.3f}")
        figures.append(f"{pop}_ok={len(ok)}/{len(rows)}")
        figures.append(f"{pop}_s={np.mean([r['s'] for r in rows]):.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        big = ct_sized(Path(tmp))
    print("ct-sized:", {k: big[k] for k in ("mean_dice", "binary_iou", "flipped_faces",
                                             "self_intersections", "failure")})
    figures += [f"ct512_wall_s={big['wall_s']:.1f}", f"ct512_register_s={big['seconds']:.1f}",
                f"ct512_dice={big['mean_dice']:.3f}", f"ct512_iou={big['binary_iou']:.3f}",
                f"ct512_fit_dice={big['fit_mean_dice']:.3f}"]
    print(" ".join(figures))


if __name__ == "__main__":
    main()
