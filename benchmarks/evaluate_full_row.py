"""How long one row of the full Table 3 protocol takes here: measured steps, extrapolated.

Times ``--steps`` training steps of the full preset's U-Net (MONAI UNet (16, 32, 64, 128),
64³ patches, batch 2) and one sliding-window prediction of a 128³ volume, on random data
(the cost does not depend on the values), then multiplies out the full schedule: 2000
fine-tuning steps, validation every 200 steps on the fold's validation cases, one test
pass; synthetic rows add 2000 pre-training steps with the same validation. Five folds.

    python benchmarks/evaluate_full_row.py --steps 5 --val-cases 3 --test-cases 3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--val-cases", type=int, default=3, help="validation cases per fold")
    ap.add_argument("--test-cases", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from fedsim_app.evaluate.protocols import preset
    from fedsim_app.evaluate.unet import make_unet, predict, train

    cfg = preset("full", device=args.device)
    u = cfg.unet
    rng = np.random.default_rng(0)
    x = rng.normal(0, 300, (2, cfg.size, cfg.size, cfg.size)).astype(np.float32)
    y = x > 200
    net = make_unet(u)
    dev = next(net.parameters()).device
    # CUDA runs asynchronously: wait for it before reading the clock
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    train(net, x, y, 1, u)  # warm-up (allocations, MONAI imports, CUDA kernels)
    sync()
    t0 = time.perf_counter()
    train(net, x, y, args.steps, u)
    sync()
    step = (time.perf_counter() - t0) / args.steps
    t0 = time.perf_counter()
    predict(net, x[:1], u)
    sync()
    pred = time.perf_counter() - t0
    checks = u.steps // u.val_every + 1  # without a plateau stop: the longest it can take
    lower = u.steps * step + (checks * args.val_cases + args.test_cases) * pred
    synthetic = lower + u.pretrain_steps * step + checks * args.val_cases * pred
    load = os.getloadavg()
    print(f"full preset U-Net on {dev}: {step:.2f} s/step (64³ patches, batch {u.batch}), "
          f"{pred:.1f} s per 128³ prediction, {args.threads} thread(s), load "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"one fold: Lower/Upper Bound row {lower / 3600:.1f} h, a pre-trained row "
          f"{synthetic / 3600:.1f} h (U-Net only; exports and generator training extra)")
    print(f"five folds × 3 sites × 7 rows (2 real, 5 pre-trained): "
          f"{5 * 3 * (2 * lower + 5 * synthetic) / 3600:.0f} h")


if __name__ == "__main__":
    main()
