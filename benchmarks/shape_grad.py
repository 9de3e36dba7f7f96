"""Gradient benchmark: the paper's finite differences vs the soft-occupancy autograd.

Run: ``.venv/bin/python benchmarks/shape_grad.py [--shapes N]``. The loss is
``Σ_labels ∫ w_label(x) dx`` over the voxelized heart, with smooth random per-label weight
fields ``w``; finite differences evaluate it on hard 128³ labels (42 perturbed shapes,
shared rasterisation passes), the soft estimator on a 48³ soft occupancy. The last line
holds ``key=value`` pairs: fd_ms, soft_ms, speedup, cosine_min, cosine_mean.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def weights(grid, seed):
    """(8, nz, ny, nx) smooth weight fields: a random affine function per label."""
    r = np.random.default_rng(seed)
    zc, yc, xc = grid.axis_centers()
    z, y, x = np.meshgrid(zc - zc.mean(), yc - yc.mean(), xc - xc.mean(), indexing="ij")
    w = np.stack([a[0] + (a[1] * x + a[2] * y + a[3] * z) / 50 for a in r.normal(size=(8, 4))])
    w[0] = 0
    return w



def load_model():
    """The shipped atlas SSM (what the figures are for); returns ``(model, source)``."""
    from fedsim_app.shape import load_atlas_ssm

    return load_atlas_ssm(), "atlas asset"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=4, help="faces blended per soft point")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()

    import torch

    from fedsim_app.io.grid import Grid
    from fedsim_app.shape import SoftConfig, cosine, default_grid, fd_gradient, soft_gradient

    if args.threads:
        torch.set_num_threads(args.threads)
    model, source = load_model()
    fine = default_grid(model)
    coarse = Grid.centered(48, 208.0 / 48, tuple(
        np.asarray(fine.origin_mm) + (np.asarray(fine.shape[::-1]) - 1) * fine.spacing_xyz / 2
    ))
    w_f = weights(fine, 1).astype(np.float32)
    w_c = torch.tensor(weights(coarse, 1))
    dv_f, dv_c = float(np.prod(fine.spacing_mm)), float(np.prod(coarse.spacing_mm))

    def hard(labels):  # (B, nz, ny, nx) uint8 → (B,)
        return np.array([np.take_along_axis(w_f, lab[None].astype(np.intp), 0).sum()
                         for lab in labels]) * dv_f

    def soft(probs):  # (8, nz, ny, nx)
        return (probs * w_c).sum() * dv_c

    cfg = SoftConfig(tau_mm=0.5 * coarse.spacing_mm[0], k=args.k)
    print(f"model: {source}; FD on {fine.shape} ({fine.spacing_mm[0]:.3f} mm), "
          f"soft on {coarse.shape} ({coarse.spacing_mm[0]:.3f} mm, tau {cfg.tau_mm:.2f} mm)")
    rng = np.random.default_rng(args.seed)
    soft_gradient(model, np.zeros(21), soft, coarse, cfg)  # warm-up
    fd_t, soft_t, cos = [], [], []
    for k in range(args.shapes):
        p = rng.uniform(-0.7, 0.7, 21)
        t = time.perf_counter()
        _, g_fd = fd_gradient(model, p, hard, fine, eps=0.05)
        fd_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        _, g_soft = soft_gradient(model, p, soft, coarse, cfg)
        soft_t.append(time.perf_counter() - t)
        cos.append(cosine(g_fd, g_soft))
        print(f"shape {k}: FD {1e3 * fd_t[-1]:7.0f} ms  soft {1e3 * soft_t[-1]:6.0f} ms  "
              f"cosine {cos[-1]:.4f}")
    fd_ms, soft_ms = 1e3 * np.median(fd_t), 1e3 * np.median(soft_t)
    print(f"fd_ms={fd_ms:.1f} soft_ms={soft_ms:.1f} speedup={fd_ms / soft_ms:.2f} "
          f"cosine_min={min(cos):.4f} cosine_mean={np.mean(cos):.4f} "
          f"torch_threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
