"""The model's chain without networks: params → labels → Fix-Mat → coarse CT → CT slices.

Run: ``.venv/bin/python benchmarks/chain.py [--size 64] [--batch 4] [--repeats 5]``.
Times (median ms) one forward pass of a batch through
:class:`fedsim_app.models.generator.Generator` on site A, with hard labels (what the
Explorer and export run) and with soft labels plus the backward pass to the parameters
(what shape training runs). Says whether the site's coarse system matrix was cached (the
fast path) or diffct's direct path ran. The last line holds ``key=value`` pairs.
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


def main() -> None:
    import torch

    from fedsim_app.models.generator import ChainConfig, Generator

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64, help="label grid voxels per axis")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default=None, help="torch device (default: FedSim's choice)")
    args = ap.parse_args()

    gen = Generator("A", config=ChainConfig(label_size=args.size), device=args.device)
    rng = np.random.default_rng(0)
    params = torch.as_tensor(rng.uniform(-0.5, 0.5, (args.batch, 21)), dtype=torch.float32,
                             device=gen.device)
    path = "matrix" if gen.scanner.matrix_ready else "diffct direct"
    sync = torch.cuda.synchronize if gen.device.type == "cuda" else (lambda: None)

    def hard():
        with torch.no_grad():
            gen(params=params)
        sync()

    def soft():
        p = params.clone().requires_grad_(True)
        out = gen(params=p, soft=True)
        out.coarse_hu.mean().backward()
        sync()

    hard()  # warm-up: SSM tensors, attenuation table, matrix load
    hard_ms = _median_ms(hard, args.repeats)
    soft_ms = _median_ms(soft, max(1, args.repeats // 2))
    print(f"site A, {args.size}³ labels, batch {args.batch}, {gen.device}, coarse CT: {path}")
    print(f"forward, hard labels: {hard_ms:.0f} ms ({hard_ms / args.batch:.0f} ms a sample)")
    print(f"forward + backward, soft labels: {soft_ms:.0f} ms")
    print(f"size={args.size} batch={args.batch} coarse_path={path.replace(' ', '_')} "
          f"hard_ms={hard_ms:.1f} soft_backward_ms={soft_ms:.1f}")


if __name__ == "__main__":
    main()
