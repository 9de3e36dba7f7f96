import dataclasses

import numpy as np
import pytest
import torch

from fedsim_app.device import default_device, resolve_device
from fedsim_app.errors import FedSimError
from fedsim_app.evaluate.unet import (
    PRESETS,
    make_unet,
    predict,
    pretrain_finetune,
    train,
    window,
)


def _cubes(n, size=16, seed=0):
    """HU volumes with a bright cube (the 'heart') at a random place, and its mask."""
    rng = np.random.default_rng(seed)
    x = np.full((n, size, size, size), -100.0, np.float32)
    y = np.zeros_like(x, dtype=bool)
    for i in range(n):
        a = rng.integers(2, size - 8, 3)
        y[i, a[0]:a[0] + 6, a[1]:a[1] + 6, a[2]:a[2] + 6] = True
    x[y] = 400.0
    return x + rng.normal(0, 20, x.shape).astype(np.float32), y


def test_window_maps_the_soft_tissue_range():
    np.testing.assert_allclose(window([-1000.0, -200.0, 200.0, 600.0, 3000.0]),
                               [0, 0, 0.5, 1, 1])


def test_unet_trains_a_few_steps_and_predicts_masks():
    cfg = PRESETS["smoke"]
    x, y = _cubes(3)
    net = make_unet(cfg)
    before = [p.detach().clone() for p in net.parameters()]
    net, log = train(net, x, y, 4, cfg, val=(x[:1], y[:1]))
    assert len(log["loss"]) == 4 and np.isfinite(log["loss"]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert 1 <= log["selected_step"] <= 4 and [s for s, _ in log["val"]] == [2, 4]
    pred = predict(net, x, cfg)
    assert pred.shape == x.shape and pred.dtype == bool


def test_pretrain_finetune_replays_and_logs_both_stages():
    cfg = PRESETS["smoke"]
    real, syn = _cubes(2, seed=1), _cubes(3, seed=2)
    net1, log1 = pretrain_finetune(cfg, real, synthetic=syn, val=real)
    net2, log2 = pretrain_finetune(cfg, real, synthetic=syn, val=real)
    assert set(log1) == {"pretrain", "finetune"}
    assert log1["finetune"]["loss"] == log2["finetune"]["loss"]  # seeded
    _, log3 = pretrain_finetune(cfg, real)
    assert set(log3) == {"finetune"}


def test_a_stage_stops_at_a_validation_plateau():
    # lr 0: the weights never change, so no check after the first can improve on it
    cfg = dataclasses.replace(PRESETS["smoke"], lr=0.0, val_every=1, patience=2)
    x, y = _cubes(2, seed=3)
    _, log = train(make_unet(cfg), x, y, 10, cfg, val=(x, y))
    assert log["stopped_step"] == 3 and len(log["loss"]) == 3
    assert log["selected_step"] == 1
    _, log = train(make_unet(cfg), x, y, 3, dataclasses.replace(cfg, patience=None),
                   val=(x, y))
    assert "stopped_step" not in log and len(log["loss"]) == 3


def test_device_is_honoured_and_a_missing_gpu_refused(monkeypatch):
    cfg = dataclasses.replace(PRESETS["smoke"], device="cpu")
    net = make_unet(cfg)
    assert {p.device.type for p in net.parameters()} == {"cpu"}
    x, y = _cubes(1, seed=4)
    train(net, x, y, 1, cfg)  # batches follow the network's device
    assert resolve_device("auto") == default_device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FedSimError, match="no CUDA GPU"):
        resolve_device("cuda:0")
    with pytest.raises(FedSimError, match="not a torch device"):
        resolve_device("abacus")
