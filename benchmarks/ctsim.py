"""Benchmark the CT simulator: coarse render, wrapper overhead, full-resolution renders.

Run: ``python benchmarks/ctsim.py [--repeats 20] [--physics-size 64] [--fast-size 128]``.
The last line prints ``key=value`` figures (milliseconds unless named otherwise).

* coarse_fwd_ms / coarse_fwdbwd_ms: `CoarseCT` (site_a, 16³, 26 views), one volume.
* coarse_fwd_b8_ms_per_vol: the same in a batch of 8, per volume.
* coarse_noisy_fwd_ms / coarse_noisy_fwdbwd_ms: with quantum noise (Poisson / Gaussian).
* diffct_direct_fwd_ms / diffct_direct_fwdbwd_ms: diffct's Projector.project + fdk called
  directly on the same geometry (what the system matrix replaces).
* wrapper_fwd_ms vs diffct_direct_fwd_ms gives wrapper_overhead_pct (CTOperator vs raw diffct).
* fast_<n>_s / physics_<n>_s: full-resolution renders of the chest phantom.
"""

from __future__ import annotations

import argparse
import statistics
import time


def _median_ms(fn, repeats: int, warmup: int = 2) -> float:
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()  # CUDA kernels run asynchronously: time them to completion
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--direct-repeats", type=int, default=5)
    parser.add_argument("--physics-size", type=int, default=64)
    parser.add_argument("--fast-size", type=int, default=128)
    parser.add_argument("--scanner", default="site_a")
    args = parser.parse_args(argv)

    import diffct
    import torch

    from fedsim_app.ctsim import CoarseCT, load_scanner, render
    from fedsim_app.ctsim.phantoms import CHEST_CLASSES, chest_phantom

    profile = load_scanner(args.scanner)
    figures: dict[str, float] = {"threads": torch.get_num_threads()}
    from fedsim_app.device import default_device

    print(f"device: {default_device()}", flush=True)

    # -- coarse path ---------------------------------------------------------------------
    ct = CoarseCT(profile)
    t0 = time.perf_counter()
    _ = ct.matrix  # built once per scanner (about a minute), then loaded from the cache
    figures["coarse_matrix_load_or_build_s"] = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    mu1 = 0.02 * torch.rand((1, 16, 16, 16), generator=g)
    mu8 = 0.02 * torch.rand((8, 16, 16, 16), generator=g)

    def coarse_fwd():
        with torch.no_grad():
            ct(mu1)

    def coarse_fwdbwd(mu=mu1):
        x = mu.clone().requires_grad_()
        ct(x).square().mean().backward()

    figures["coarse_fwd_ms"] = _median_ms(coarse_fwd, args.repeats)
    figures["coarse_fwdbwd_ms"] = _median_ms(coarse_fwdbwd, args.repeats)
    figures["coarse_fwd_b8_ms_per_vol"] = _median_ms(
        lambda: ct(mu8).detach(), args.repeats) / 8
    figures["coarse_fwdbwd_b8_ms_per_vol"] = _median_ms(
        lambda: coarse_fwdbwd(mu8), args.repeats) / 8

    # Noisy coarse render: projection-domain noise through the sparse diffct maps.
    t0 = time.perf_counter()
    _ = ct.noise_operators
    figures["coarse_noise_ops_load_or_build_s"] = time.perf_counter() - t0

    def coarse_noisy_fwdbwd():
        xx = mu1.clone().requires_grad_()
        ct(xx, noise=True, differentiable_noise=True, generator=g).square().mean().backward()

    figures["coarse_noisy_fwd_ms"] = _median_ms(
        lambda: ct(mu1, noise=True, generator=g).detach(), args.repeats)
    figures["coarse_noisy_fwdbwd_ms"] = _median_ms(coarse_noisy_fwdbwd, args.repeats)

    # -- the same geometry through diffct directly, and through CTOperator ----------------
    op = ct.operator
    traj = diffct.circular_trajectory_3d(op.n_views, op.sid_mm, op.sdd_mm, device=op.device)
    angles = torch.arange(op.n_views, dtype=torch.float32, device=op.device) * (
        2 * torch.pi / op.n_views)
    raw = diffct.Projector(traj, op.volume_shape, op.detector_shape, beam="cone",
                           detector_spacing=op.detector_pitch_mm, voxel_spacing=op.spacing_mm,
                           backend="torch", precision="float32")
    fdk_kw = dict(detector_spacing=op.detector_pitch_mm, voxel_spacing=op.spacing_mm,
                  window=op.window, pad_factor=2, backend="torch", precision="float32")
    x = mu1[0].to(op.device)

    def direct_fwd():
        with torch.no_grad():
            diffct.fdk(raw.project(x), traj, op.volume_shape, angles, **fdk_kw)

    def direct_fwdbwd():
        xx = x.clone().requires_grad_()
        diffct.fdk(raw.project(xx), traj, op.volume_shape, angles, **fdk_kw).square().mean(
        ).backward()

    def wrapper_fwd():
        with torch.no_grad():
            op.fdk(op.forward(x))

    # Interleave the two so machine load affects both alike.
    direct, wrapped = [], []
    for _ in range(max(1, args.direct_repeats // 5)):
        direct.append(_median_ms(direct_fwd, 5, warmup=1))
        wrapped.append(_median_ms(wrapper_fwd, 5, warmup=1))
    figures["diffct_direct_fwd_ms"] = statistics.median(direct)
    figures["wrapper_fwd_ms"] = statistics.median(wrapped)
    figures["wrapper_overhead_pct"] = 100.0 * (figures["wrapper_fwd_ms"]
                                               / figures["diffct_direct_fwd_ms"] - 1.0)
    figures["diffct_direct_fwdbwd_ms"] = _median_ms(direct_fwdbwd, args.direct_repeats, 1)
    y_direct = diffct.fdk(raw.project(x), traj, op.volume_shape, angles, **fdk_kw)
    y_matrix = ct.reconstruct_mu(x)
    figures["coarse_vs_direct_max_rel_err"] = float(
        (y_matrix - y_direct).abs().max() / y_direct.abs().max())

    # -- full-resolution renders -----------------------------------------------------------
    for fidelity, n in (("fast", args.fast_size), ("physics", args.physics_size)):
        spacing = (profile.fov_mm / n,) * 3
        labels = chest_phantom((n, n, n), spacing)
        t0 = time.perf_counter()
        render(labels, CHEST_CLASSES, profile, spacing_mm=spacing, fidelity=fidelity,
               generator=torch.Generator().manual_seed(1))
        figures[f"{fidelity}_{n}_s"] = time.perf_counter() - t0
        print(f"{fidelity} render {n}^3: {figures[f'{fidelity}_{n}_s']:.2f} s", flush=True)

    for key, value in figures.items():
        print(f"{key:34s} {value:10.3f}")
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
