"""`fedsim ssm fit` on a CT-sized label map: 512×512×250, LAS orientation, anisotropic
0.45×0.45×0.8 mm spacing, MM-WHS codes (a held-out adult heart, not an atlas member).

Run: .venv/bin/python benchmarks/ssm_fit.py   (last line: key=value figures)
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from fedsim_app.anatomy import build_heart, sample_heart_params
from fedsim_app.io import Grid, Volume, from_internal, get_code_set, write_nifti
from fedsim_app.shape import voxelize_meshes


def make_input(path: Path) -> None:
    heart = build_heart(sample_heart_params("adult", 12345))
    verts = heart.stacked_vertices()
    centre = tuple((verts.min(0) + verts.max(0)) / 2 + np.array([7.0, -5.0, 4.0]))
    grid = Grid.centered((250, 512, 512), (0.8, 0.45, 0.45), centre)
    labels = voxelize_meshes(heart, grid)
    mmwhs = from_internal(labels, get_code_set("mmwhs")).astype(np.int16)
    write_nifti(Volume(mmwhs, grid, kind="label"), path, orientation="LAS")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case_label.nii.gz"
        make_input(path)
        print("input:", nib.load(path).shape, nib.aff2axcodes(nib.load(path).affine))
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "fedsim_app", "ssm", "fit", str(path),
                              "--json"], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
    result = json.loads(out.stdout)
    dice = result["dice"]
    print("dice:", {k: round(v, 3) for k, v in dice.items()})
    print(f"wall_s={wall:.1f} fit_s={result['seconds']:.1f} binary_iou={result['binary_iou']:.3f} "
          f"dice_min={min(dice.values()):.3f} dice_mean={np.mean(list(dice.values())):.3f}")


if __name__ == "__main__":
    main()
