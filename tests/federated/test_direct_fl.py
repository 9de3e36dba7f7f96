"""Direct-FL (FedAvg of the evaluation's U-Net): the average after one round is the
weighted mean of independently trained site copies; a few rounds learn a tiny task."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.evaluate.metrics import dice_scores
from fedsim_app.evaluate.unet import PRESETS, make_unet, predict, train
from fedsim_app.federated.direct_fl import fedavg, train_direct_fl


def _cubes(n, size=16, seed=0):
    """HU volumes, each with a bright ball (the 'heart') at a random centre, and its mask."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"))  # (3, D, H, W)
    centres = rng.uniform(5, size - 5, (n, 3, 1, 1, 1))
    y = ((grid[None] - centres) ** 2).sum(1) < 3.5 ** 2  # (n, D, H, W)
    x = np.where(y, 400.0, -100.0) + rng.normal(0, 20, y.shape)
    return x.astype(np.float32), y


def test_one_round_is_the_weighted_mean_of_the_sites_local_training():
    cfg = PRESETS["smoke"]
    data = {"A": _cubes(1, seed=1), "B": _cubes(3, seed=2)}
    log = {}
    net = train_direct_fl(data, cfg, rounds=1, local_steps=2, seed=5, log=log)
    # by hand: each site trains its own copy of the initial U-Net with its own seed
    local = []
    for i, site in enumerate(data):
        copy_i, _ = train(make_unet(cfg), *data[site], 2, cfg, seed=5 + i)
        local.append(copy_i.state_dict())
    init = make_unet(cfg).state_dict()
    got = net.state_dict()
    changed = 0
    for k, v in got.items():
        if not v.is_floating_point():
            continue
        want = (1 * local[0][k].double() + 3 * local[1][k].double()) / 4
        torch.testing.assert_close(v.double(), want, rtol=1e-6, atol=1e-7)
        changed += not torch.equal(v, init[k])
    assert changed  # the round did move the weights
    assert log["sizes"] == {"A": 1, "B": 3} and len(log["rounds"]) == 1
    assert set(log["rounds"][0]["loss"]) == {"A", "B"}


def test_fedavg_weights_and_rejects_bad_weights():
    a = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 0.0]), "n": torch.tensor(7)}
    out = fedavg([a, b], [3, 1])
    torch.testing.assert_close(out["w"], torch.tensor([1.0, 3.0]))
    assert out["n"].item() == 3  # counters are not averaged
    with pytest.raises(FedSimError, match="weight"):
        fedavg([a, b], [0, 0])
    with pytest.raises(FedSimError, match="weight"):
        fedavg([a, b], [1])


def test_a_few_rounds_improve_dice_and_select_on_validation():
    cfg = dataclasses.replace(PRESETS["smoke"], val_every=4)
    data = {"A": _cubes(2, seed=3), "B": _cubes(2, seed=4), "C": _cubes(2, seed=5)}
    val = {"A": _cubes(2, seed=6)}
    before = float(np.mean(dice_scores(predict(make_unet(cfg), *val["A"][:1], cfg),
                                       val["A"][1])))
    seen = []
    net = train_direct_fl(data, cfg, rounds=8, local_steps=4, val=val, log=seen.append)
    after = float(np.mean(dice_scores(predict(net, *val["A"][:1], cfg), val["A"][1])))
    assert after > before + 0.2, (before, after)
    assert [r["round"] for r in seen] == list(range(1, 9))
    assert all("val_dice" in r for r in seen)  # val_every 4 = one round of 4 steps
    assert after == pytest.approx(max(r["val_dice"] for r in seen))


def test_replays_from_the_same_seeds():
    cfg = PRESETS["smoke"]
    data = {"A": _cubes(2, seed=1), "B": _cubes(2, seed=2)}
    a = train_direct_fl(data, cfg, rounds=2, local_steps=2, seed=3)
    b = train_direct_fl(copy.deepcopy(data), cfg, rounds=2, local_steps=2, seed=3)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


@pytest.mark.parametrize("data, match", [
    ({}, "no sites"),
    ({"A": (np.zeros((2, 8, 8, 8)), np.zeros((2, 8, 8)))}, "site A"),
    ({"A": (np.zeros((0, 8, 8, 8)), np.zeros((0, 8, 8, 8)))}, "site A"),
])
def test_bad_input_names_the_site(data, match):
    with pytest.raises(FedSimError, match=match):
        train_direct_fl(data, PRESETS["smoke"], rounds=1, local_steps=1)
