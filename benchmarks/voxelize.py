"""Voxelizer benchmark: ours vs trimesh, speed at 128³ and agreement at 48³.

Run: ``.venv/bin/python benchmarks/voxelize.py [--repeats N]``. The last line holds
``key=value`` pairs: ours_ms (median, all seven structures, 128³ default grid),
trimesh_fill_ms (sum over the seven meshes of ``voxelized(pitch).fill()``),
speedup, agreement (min over structures of inside/outside agreement with trimesh's exact
``contains`` at 48³) and label_agreement (labels after precedence, 48³).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))



def load_model():
    """The shipped atlas SSM (what the figures are for); returns ``(model, source)``."""
    from fedsim_app.shape import load_atlas_ssm

    return load_atlas_ssm(), "atlas asset"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()



    from fedsim_app.io.grid import Grid
    from fedsim_app.shape import default_grid, precedence_lut, structure_flags, voxelize
    from fedsim_app.shape.soft import grid_points

    model, source = load_model()
    rng = np.random.default_rng(args.seed)
    verts = model.decode(rng.uniform(-0.5, 0.5, 21))
    grid = default_grid(model)
    print(f"model: {source}; {model.n_vertices} vertices, {len(model.topology.faces)} faces")
    print(f"grid: {grid.shape} at {grid.spacing_mm[0]:.3f} mm")

    voxelize(model, verts, grid)  # warm-up
    ours_ms = _median_ms(lambda: voxelize(model, verts, grid), args.repeats)
    meshes = model.topology.meshes(verts)
    pitch = grid.spacing_mm[0]

    def trimesh_fill():
        return [m.voxelized(pitch).fill() for m in meshes.values()]

    trimesh_fill()
    tm_ms = _median_ms(trimesh_fill, max(1, args.repeats // 2))
    print(f"ours (7 structures, one pass):      {ours_ms:8.1f} ms")
    print(f"trimesh voxelized().fill() (sum 7): {tm_ms:8.1f} ms")

    small = Grid.centered(48, 208.0 / 48, tuple(
        np.asarray(grid.origin_mm) + (np.asarray(grid.shape[::-1]) - 1) * grid.spacing_xyz / 2
    ))
    pts = grid_points(small)
    flags = structure_flags(verts, model.topology.faces, model.topology.face_bits(), small)
    ref_flags = np.zeros(small.shape, np.uint8)
    per = []
    for i, (name, mesh) in enumerate(meshes.items()):
        ref = mesh.contains(pts).reshape(small.shape)
        ref_flags |= (ref.astype(np.uint8) << i)
        agree = float((((flags >> i) & 1).astype(bool) == ref).mean())
        per.append(agree)
        print(f"  agreement {name:<18} {100 * agree:7.3f}%  ({int(ref.sum())} voxels inside)")
    lut = precedence_lut(model.topology.names)
    label_agree = float((lut[flags] == lut[ref_flags]).mean())
    print(f"label agreement after precedence (48³): {100 * label_agree:.3f}%")
    print(
        f"ours_ms={ours_ms:.2f} trimesh_fill_ms={tm_ms:.2f} speedup={tm_ms / ours_ms:.2f} "
        f"agreement={min(per):.5f} label_agreement={label_agree:.5f}"
    )


if __name__ == "__main__":
    main()
