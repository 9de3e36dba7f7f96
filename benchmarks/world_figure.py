"""README picture: one cohort case per site, previous world beside this one.

For each site, case 0 at 128³ (fast): axial through the LV centroid and coronal through
it, cardiac window (level 150, width 800 HU), radiological orientation (patient's right
on the left). The previous world is the plain torso the same record renders in when its
``world`` field is empty (``CaseRecord.world = {}``, the path that replays records
written before the world existed): same heart, torso, contrast and noise seed.

Run: .venv/bin/python benchmarks/world_figure.py [--out docs/images/world_sites.png]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from fedsim_app.cohort import render_case, sample_case
from fedsim_app.sites import load_sites

LEVEL, WIDTH = 150.0, 800.0


def views(image: np.ndarray, label: np.ndarray):
    """Axial and coronal slices through the LV centroid, radiological orientation."""
    iz, iy, _ = np.argwhere(label == 1).mean(axis=0).round().astype(int)
    axial = image[iz][::-1, ::-1]  # anterior up, patient's right on the left
    coronal = image[:, iy, :][::-1, ::-1]  # superior up
    return axial, coronal


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/images/world_sites.png")
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    sites = load_sites()
    fig, axes = plt.subplots(3, 4, figsize=(12, 9.4))
    lo, hi = LEVEL - WIDTH / 2, LEVEL + WIDTH / 2
    for row, key in enumerate("ABC"):
        rec = sample_case(sites[key], 0, size=args.size)
        panels = []
        for r in (dataclasses.replace(rec, world={}), rec):
            image, label = render_case(r)
            panels.append(views(image.array, label.array))
        order = [(panels[0][0], "previous, axial"), (panels[1][0], "this world, axial"),
                 (panels[0][1], "previous, coronal"), (panels[1][1], "this world, coronal")]
        for col, (img, title) in enumerate(order):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"site {key}: {title}", fontsize=9)
    fig.suptitle(f"Case 0 per site, {args.size}³, fast fidelity; window L {LEVEL:.0f} "
                 f"W {WIDTH:.0f} HU; patient's right on the left", fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
