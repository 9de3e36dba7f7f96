"""How long one row of a Table 3 preset's U-Net takes here: measured steps, extrapolated.

Times ``--steps`` training steps of the preset's U-Net (full: MONAI UNet (16, 32, 64, 128),
64³ patches, batch 2, 128³ volumes; quick: (8, 16, 32), 32³ patches, 64³ volumes) and one
sliding-window prediction of a volume, on random data (the cost does not depend on the
values), in wall and CPU seconds, then multiplies out the preset's schedule without a
plateau stop (the longest it can take): fine-tuning steps with a validation pass every
``val_every`` steps, one test pass and the OOD passes; synthetic rows add the pre-training
steps with the same validation; Direct-FL's FedAvg runs every site's local steps. The
generators' training, exports and C2ST are not the U-Net's and are timed by the protocol.

    python benchmarks/evaluate_full_row.py --steps 5 --val-cases 3 --test-cases 3
    python benchmarks/evaluate_full_row.py --preset quick --steps 10 --val-cases 2 \
        --test-cases 2 --ood-cases 4 --device cpu
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
    ap.add_argument("--ood-cases", type=int, default=0, help="OOD cases per site (per row)")
    ap.add_argument("--preset", choices=("full", "quick"), default="full")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from fedsim_app.evaluate.protocols import preset
    from fedsim_app.evaluate.unet import make_unet, predict, train

    cfg = preset(args.preset, device=args.device)
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
    t0, c0 = time.perf_counter(), time.process_time()
    train(net, x, y, args.steps, u)
    sync()
    step = (time.perf_counter() - t0) / args.steps
    step_cpu = (time.process_time() - c0) / args.steps
    t0, c0 = time.perf_counter(), time.process_time()
    predict(net, x[:1], u)
    sync()
    pred, pred_cpu = time.perf_counter() - t0, time.process_time() - c0

    def row(step_s, pred_s, pretrain_steps):  # one fold of one row, seconds
        checks = u.steps // u.val_every + 1
        s = u.steps * step_s + (checks * args.val_cases + args.test_cases
                                + args.ood_cases) * pred_s
        if pretrain_steps:
            s += pretrain_steps * step_s + (pretrain_steps // u.val_every + 1) \
                * args.val_cases * pred_s
        return s

    load = os.getloadavg()
    n = args.preset, cfg.size
    print(f"{n[0]} preset U-Net on {dev}: {step:.3f} s/step wall, {step_cpu:.3f} CPU "
          f"({u.roi}³ patches, batch {u.batch}); {pred:.2f} s per {n[1]}³ prediction wall, "
          f"{pred_cpu:.2f} CPU; {args.threads} thread(s), load "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    # per site: Lower, Upper and Direct-FL's local fine-tuning are real-only rows; Fix-Mat,
    # Ours-Pre, Ours-Full and Sim-FL pre-train first; Direct-FL's FedAvg runs once per fold
    # (rounds × local steps = pretrain_steps per site, three sites)
    fl = 3 * u.pretrain_steps
    for what, st, pr in (("wall", step, pred), ("CPU", step_cpu, pred_cpu)):
        lower, synthetic = row(st, pr, 0), row(st, pr, u.pretrain_steps)
        total = cfg.folds * (3 * (3 * lower + 4 * synthetic) + fl * st)
        print(f"{what}: one fold: a real-only row {lower / 60:.1f} min, a pre-trained "
              f"row {synthetic / 60:.1f} min, Direct-FL's FedAvg {fl * st / 60:.1f} min; "
              f"{cfg.folds} fold(s) × 3 sites × 7 rows: {total / 3600:.2f} h (U-Net only)")


if __name__ == "__main__":
    main()
