"""How hard is each world? A small 2-D U-Net's binary-heart Dice per site, both worlds.

Per site: ``--train`` cases to train on, ``--test`` other cases to test on, rendered at
``--size``³ (fast) in this world and in the previous one (the same records without a
world: the plain torso). Axial slices, HU clipped to [-1000, 1000] and scaled by 1/1000;
target: any heart label. A MONAI 2-D U-Net (channels 8-16-32) trained with Dice + CE
for ``--steps`` steps of 16 slices (Adam 3e-3, seed 0), then the 3-D Dice of the test
volumes (slices stacked back). A lower Dice means a harder world, as real scans are.

Run: .venv/bin/python benchmarks/world_dice.py [--size 64] [--train 8] [--test 4] [--steps 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from fedsim_app.cohort import render_case, sample_case
from fedsim_app.sites import load_sites


def volumes(site, indices, size, world: bool):
    images, masks = [], []
    for i in indices:
        rec = sample_case(site, i, size=size)
        if not world:
            rec = dataclasses.replace(rec, world={})
        image, label = render_case(rec)
        images.append(np.clip(image.array, -1000, 1000) / 1000.0)
        masks.append(label.array > 0)
    return np.stack(images).astype(np.float32), np.stack(masks)


def train_and_test(train, test, steps: int) -> float:
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    x = torch.from_numpy(train[0].reshape(-1, 1, *train[0].shape[2:]))  # (cases·z, 1, y, x)
    y = torch.from_numpy(train[1].reshape(-1, 1, *train[1].shape[2:]).astype(np.float32))
    net = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(8, 16, 32),
               strides=(2, 2), num_res_units=1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = DiceCELoss(sigmoid=True)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (16,), generator=gen)
        opt.zero_grad()
        loss = loss_fn(net(x[idx]), y[idx])
        loss.backward()
        opt.step()
    net.eval()
    dices = []
    with torch.no_grad():
        for image, mask in zip(*test, strict=True):
            pred = net(torch.from_numpy(image[:, None])).squeeze(1).numpy() > 0
            inter = (pred & mask).sum()
            dices.append(2 * inter / max(pred.sum() + mask.sum(), 1))
    return float(np.mean(dices))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--train", type=int, default=8)
    ap.add_argument("--test", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--sites", default="ABC")
    args = ap.parse_args()
    torch.set_num_threads(2)
    sites = load_sites()
    figures = {}
    print("| site | Dice, previous world | Dice, this world |\n|---|---|---|")
    for key in args.sites:
        cells = []
        for world in (False, True):
            t0 = time.perf_counter()
            tr = volumes(sites[key], range(args.train), args.size, world)
            te = volumes(sites[key], range(args.train, args.train + args.test), args.size,
                         world)
            dice = train_and_test(tr, te, args.steps)
            figures[f"dice_{key}_{'world' if world else 'previous'}"] = dice
            cells.append(f"{dice:.3f}")
            print(f"  site {key} {'world' if world else 'previous'}: "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        print(f"| {key} | {cells[0]} | {cells[1]} |", flush=True)
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
