"""Direct-FL, the evaluation's federated baseline: FedAvg of the segmentation U-Net.

The sites train the evaluation's MONAI U-Net (:func:`fedsim_app.evaluate.unet.make_unet`)
on their own labelled volumes with the evaluation's loss and patching
(:func:`fedsim_app.evaluate.unet.train`); every round each site starts from the global
weights, takes ``local_steps`` steps and returns its weights; the global weights become
their average weighted by each site's number of labelled volumes (McMahan et al.'s
FedAvg). Only weights leave a site, never images or labels.

This is the paper's "Direct-FL" row: federation of the task network itself, without the
simulator. It runs in one process, one site after another, as the in-process runtime.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import torch

from fedsim_app.errors import FedSimError


def fedavg(states: list[Mapping[str, torch.Tensor]], weights: list[float]
           ) -> dict[str, torch.Tensor]:
    """The weighted average of state dicts (floating tensors; others from the first).

    Parameters
    ----------
    states : the sites' ``state_dict()``\\ s, all with the same keys and shapes
    weights : one non-negative weight per state (normalised here)

    Returns
    -------
    ``{name: tensor}``; integer buffers (counters) are taken from the first state, as an
    average of counts means nothing.
    """
    w = torch.tensor(weights, dtype=torch.float64)
    if len(states) != len(w) or not len(states) or (w < 0).any() or w.sum() <= 0:
        raise FedSimError(f"fedavg needs one non-negative weight per state, not all zero; "
                          f"got {len(states)} states and weights {list(weights)}")
    w = w / w.sum()
    out = {}
    for k, first in states[0].items():
        if not first.is_floating_point():
            out[k] = first.clone()
            continue
        # accumulate in float64: three sites' float32 sums would round differently from
        # a hand-computed average
        acc = sum(wi * s[k].double() for wi, s in zip(w, states, strict=True))
        out[k] = acc.to(first.dtype)
    return out


def _check_data(data: dict) -> None:
    if not data:
        raise FedSimError("train_direct_fl: no sites given")
    for site, pair in data.items():
        if len(pair) != 2:
            raise FedSimError(f"site {site}: give (images_hu, labels), got {len(pair)} arrays")
        x, y = (np.asarray(a) for a in pair)
        if x.ndim != 4 or x.shape != y.shape or not len(x):
            raise FedSimError(f"site {site}: images and labels must be (N, D, H, W) arrays "
                              f"of one shape with N ≥ 1, got {x.shape} and {y.shape}")


def train_direct_fl(data: dict[str, tuple[np.ndarray, np.ndarray]], cfg, *, rounds: int,
                    local_steps: int, seed: int = 0,
                    val: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                    log: dict | Callable[[dict], None] | None = None) -> torch.nn.Module:
    """FedAvg of the evaluation's U-Net over the sites' labelled volumes.

    Parameters
    ----------
    data : ``{site: (images_hu, labels)}``, arrays of shape (N, D, H, W) per site; a
        site's weight in the average is its N
    cfg : the evaluation's :class:`~fedsim_app.evaluate.unet.UNetConfig` (network, patch
        size, batch, learning rate; ``cfg.seed`` seeds the initial weights)
    rounds : communication rounds
    local_steps : the U-Net's optimiser steps per site per round (a fresh Adam each
        round, as FedAvg's clients)
    seed : seeds the sites' patch sampling (site i in round r draws from
        ``seed + 1000 * r + i``)
    val : ``{site: (images_hu, labels)}`` validation volumes; when given the global
        weights are scored (mean Dice over all sites' volumes) after every round whose
        step count crosses ``cfg.val_every`` and after the last, and the best are returned
    log : a dict filled in place (``rounds``: one record per round with each site's mean
        loss and the validation Dice; ``selected_round``, ``selected_val_dice``), or a
        callable given each round's record as it finishes

    Returns
    -------
    The global U-Net (in eval mode).

    Examples
    --------
    >>> net = train_direct_fl({"A": (xa, ya), "B": (xb, yb)}, PRESETS["smoke"],
    ...                       rounds=2, local_steps=2)  # doctest: +SKIP
    """
    from fedsim_app.evaluate.metrics import dice_scores
    from fedsim_app.evaluate.unet import make_unet, predict, train

    if rounds < 1 or local_steps < 1:
        raise FedSimError(f"train_direct_fl: rounds and local_steps must be ≥ 1, got "
                          f"{rounds} and {local_steps}")
    _check_data(data)
    sites = list(data)
    sizes = [len(data[s][0]) for s in sites]
    net = make_unet(cfg)
    every = max(1, cfg.val_every // local_steps)
    records, best = [], (-1.0, None, 0)
    for r in range(1, rounds + 1):
        states, losses = [], {}
        for i, site in enumerate(sites):
            local = copy.deepcopy(net)
            local, site_log = train(local, *data[site], local_steps, cfg,
                                    seed=seed + 1000 * (r - 1) + i)
            states.append(local.state_dict())
            losses[site] = float(np.mean(site_log["loss"]))
        net.load_state_dict(fedavg(states, sizes))
        record = {"round": r, "loss": losses}
        if val and (r % every == 0 or r == rounds):
            x = np.concatenate([np.asarray(v[0]) for v in val.values()])
            y = np.concatenate([np.asarray(v[1]) for v in val.values()])
            record["val_dice"] = float(np.mean(dice_scores(predict(net, x, cfg), y)))
            if record["val_dice"] > best[0]:
                best = (record["val_dice"], copy.deepcopy(net.state_dict()), r)
        records.append(record)
        if callable(log):
            log(record)
    if best[1] is not None:
        net.load_state_dict(best[1])
    if isinstance(log, dict):
        log.update({"sites": sites, "sizes": dict(zip(sites, sizes, strict=True)),
                    "rounds": records, "local_steps": int(local_steps)})
        if best[1] is not None:
            log.update(selected_round=best[2], selected_val_dice=best[0])
    return net.eval()
