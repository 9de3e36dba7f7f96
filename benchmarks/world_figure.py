"""README picture: one cohort case per site, previous world beside this one.

For each site, case 0 at 128³ (fast): axial through the LV centroid and coronal through
it, cardiac window (level 150, width 800 HU), radiological orientation (patient's right
on the left). The previous world is rendered by another checkout's code (``--previous``,
e.g. an export of main: ``git archive main | tar -x -C /tmp/prev``), run in a
subprocess with its own PYTHONPATH, from the same sample arguments (same heart, torso,
contrast and noise seed: the world's record fields are drawn from their own stream).

Run: .venv/bin/python benchmarks/world_figure.py --previous /tmp/prev \
         [--out docs/images/world_sites.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SNIPPET = """
import sys, numpy as np
from fedsim_app.cohort import render_case, sample_case
try:
    from fedsim_app.sites import load_sites
except ImportError:  # code from before the one Site record
    from fedsim_app.cohort import load_sites
sites = load_sites()
for key in "ABC":
    rec = sample_case(sites[key], 0, size=int(sys.argv[2]))
    image, label = render_case(rec)
    np.save(f"{sys.argv[1]}/{key}_image.npy", image.array)
    np.save(f"{sys.argv[1]}/{key}_label.npy", label.array)
"""
LEVEL, WIDTH = 150.0, 800.0


def render_with(code_root: str | None, out_dir: str, size: int) -> None:
    env = dict(os.environ)
    root = os.path.abspath(code_root or Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = f"{root}:{root}/plugins"
    # run from the output folder: ``python -c`` puts the working directory first on
    # sys.path, which would shadow the code root with this checkout
    subprocess.run([sys.executable, "-c", SNIPPET, out_dir, str(size)], env=env, check=True,
                   cwd=out_dir)


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
    ap.add_argument("--previous", required=True, help="root of the previous world's code")
    ap.add_argument("--out", default="docs/images/world_sites.png")
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as old, tempfile.TemporaryDirectory() as new:
        render_with(args.previous, old, args.size)
        render_with(None, new, args.size)
        fig, axes = plt.subplots(3, 4, figsize=(12, 9.4))
        lo, hi = LEVEL - WIDTH / 2, LEVEL + WIDTH / 2
        for row, key in enumerate("ABC"):
            panels = []
            for root in (old, new):
                image = np.load(f"{root}/{key}_image.npy")
                label = np.load(f"{root}/{key}_label.npy")
                panels.append(views(image, label))
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
