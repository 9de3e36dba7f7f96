"""Template registration (`fedsim_app.shape.register`) on procedural label maps.

1. Every population (atlas, adult, chd-l, chd-m): ``--n`` hearts each (seeds 1000..),
   label maps at 1 mm isotropic in a scanner frame 40 mm away from the model's; the
   registered meshes' mean per-structure Dice and binary-heart IoU, folds and
   self-intersections, failing cases named. Targets: Dice ≥ 0.90, IoU ≥ 0.90.
2. A CT-sized map: 512×512×250, 0.45×0.45×0.8 mm, LAS, MM-WHS codes, a held-out adult
   heart; `fedsim ssm fit --refine --json` end to end (read included). Target ≤ 60 s.
3. ``--loo POP``: leave-one-out instead: ``--n`` hearts of POP (seeds 2000..) at 1.5 mm
   registered to the atlas template; for each heart, an SSM built from the others'
   registered meshes (Procrustes + PCA) and the atlas SSM both fit it (same FitConfig).
   Target: the own SSM fits the held-out heart better than the atlas (mean Dice).

Run: .venv/bin/python benchmarks/ssm_register.py [--n 3] [--loo POP]
(last line: key=value figures)
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
from fedsim_app.shape import (
    build_ssm,
    fit_labels,
    load_atlas_ssm,
    register_labels,
    voxelize,
    voxelize_meshes,
)


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


def leave_one_out(pop: str, n: int, spacing: float = 1.5) -> list[str]:
    model = load_atlas_ssm()
    cases, shapes = [], {}
    for k in range(n):
        v = build_heart(sample_heart_params(pop, 2000 + k)).stacked_vertices() + 40.0
        lo, hi = v.min(0) - 10, v.max(0) + 10
        grid = Grid.centered(tuple(int(x) for x in np.ceil((hi - lo) / spacing)[::-1]),
                             spacing, tuple((lo + hi) / 2))
        labels = voxelize(model, v, grid)
        cases.append((labels, grid))
        reg = register_labels(model, labels, grid)
        print(pop, 2000 + k, f"registered {reg.mean_dice:.3f}", reg.failure or "ok",
              f"{reg.seconds:.1f} s", flush=True)
        if reg.failure is None:  # as `ssm build --from-labels`: failing cases left out
            shapes[k] = reg.vertices - reg.vertices.mean(0) + np.asarray(model.center_mm)
    rows = []
    for k, (labels, grid) in enumerate(cases):
        own = build_ssm(np.stack([s for j, s in shapes.items() if j != k]),
                        model.topology, model.ranges)
        a, b = fit_labels(model, labels, grid), fit_labels(own, labels, grid)
        rows.append((np.mean(list(a.dice.values())), a.binary_iou,
                     np.mean(list(b.dice.values())), b.binary_iou))
        ad, ai, od, oi = rows[-1]
        print(pop, 2000 + k, f"atlas fit Dice {ad:.3f} IoU {ai:.3f} | own "
              f"({len(shapes) - (k in shapes)} hearts) Dice {od:.3f} IoU {oi:.3f}", flush=True)
    r = np.array(rows)
    better = int((r[:, 2] > r[:, 0]).sum())
    return [f"loo_{pop}_n={n}", f"loo_registered={len(shapes)}/{n}",
            f"loo_atlas_dice={r[:, 0].mean():.3f}", f"loo_atlas_iou={r[:, 1].mean():.3f}",
            f"loo_own_dice={r[:, 2].mean():.3f}", f"loo_own_iou={r[:, 3].mean():.3f}",
            f"loo_own_better={better}/{n}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3, help="hearts per population")
    ap.add_argument("--loo", metavar="POP", choices=POPULATIONS, default=None,
                    help="leave-one-out over --n hearts of POP instead")
    args = ap.parse_args()
    if args.loo:
        print(" ".join(leave_one_out(args.loo, args.n)))
        return
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
