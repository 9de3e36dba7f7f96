"""Differential privacy of the sites' updates: clipping, noise, accounting, the budget,
and a private run through the CLI."""

import json
import math

import pytest
import torch
from fed_helpers import make_twins

from fedsim_app.errors import FedSimError
from fedsim_app.federated.dp import (
    BudgetSpent,
    DPConfig,
    clip_and_noise,
    noise_generator,
    spent,
)
from fedsim_app.federated.inprocess import new_server, run_round
from fedsim_app.federated.protocol import RoundPlan
from fedsim_app.federated.server import FedServer


def _norm(grads):
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads.values()))


def test_clipping_scales_to_the_norm_and_leaves_small_updates():
    g = {"a": torch.full((3, 4), 2.0), "b": torch.full((5,), -1.0)}  # norm sqrt(53)
    out = clip_and_noise(g, 1.0, 0.0, torch.Generator())
    assert _norm(out) == pytest.approx(1.0, rel=1e-6)
    assert torch.allclose(out["a"] / out["a"].norm(), g["a"] / g["a"].norm())
    same = clip_and_noise(g, 100.0, 0.0, torch.Generator())
    assert all(torch.equal(same[k], g[k]) for k in g)


def test_noise_has_the_asked_std_and_replays():
    g = {"a": torch.zeros(200_000)}
    a = clip_and_noise(g, 1.0, 0.3, noise_generator(0, "A", 5))["a"]
    assert float(a.std()) == pytest.approx(0.3, rel=0.02)
    assert abs(float(a.mean())) < 0.01
    b = clip_and_noise(g, 1.0, 0.3, noise_generator(0, "A", 5))["a"]
    c = clip_and_noise(g, 1.0, 0.3, noise_generator(0, "B", 5))["a"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_multiplier_spends_the_budget_over_the_rounds():
    dp = DPConfig(8.0)
    sigma = dp.noise_multiplier(100)
    assert spent(sigma, 100, dp.delta) == pytest.approx(8.0, rel=0.01)
    assert spent(sigma, 100, dp.delta) <= 8.0 * 1.001
    assert spent(sigma, 50, dp.delta) < 8.0  # spent grows with the rounds
    assert DPConfig(1.0).noise_multiplier(100) > sigma  # a tighter budget, more noise
    for bad in ({"epsilon": 0}, {"epsilon": 8, "delta": 1.5}, {"epsilon": 8, "clip": -1}):
        with pytest.raises(FedSimError, match="dp"):
            DPConfig(**bad)


def test_server_asks_sites_to_clip_and_noise_and_stops_at_the_budget(fed_cfg, tmp_path):
    dp = DPConfig(4.0, clip=0.5)
    server = FedServer(fed_cfg, RoundPlan((2, 1, 2)), ["A", "B", "C", "D"], tmp_path,
                       dp=dp)
    task = server.next_task()
    assert task.dp_clip == 0.5
    assert task.dp_noise == pytest.approx(server.dp_sigma * 0.5 / 2)  # sqrt(4 sites)
    assert server.dp_spent == 0.0
    server.dp_rounds = 4  # all four shared rounds released
    assert server.dp_spent == pytest.approx(4.0, rel=0.01)
    with pytest.raises(BudgetSpent, match="budget of 4"):
        server.next_task()
    server.round = 2  # a local-only (gan) round spends nothing and still runs
    assert server.next_task().dp_clip == 0.0
    # resume keeps the privacy state
    server.save()
    again = FedServer.resume(tmp_path)
    assert again.dp == dp and again.dp_rounds == 4 and again.dp_sigma == server.dp_sigma


def test_private_sites_send_clipped_noisy_gradients(tiny_data, fed_cfg, tmp_path):
    clients = make_twins(tiny_data, fed_cfg, tmp_path, n=2)
    server = new_server(fed_cfg, clients, tmp_path, dp=DPConfig(8.0, clip=1e-3))
    sent = []
    task = server.next_task()
    for c in clients:
        sent.append(c.train_round(task, server.weights()))
    # twins compute the same gradient; each clipped to 1e-3 and noised differently
    noise = task.dp_noise
    n = sum(v.numel() for v in sent[0].grads.values())
    for u in sent:
        assert _norm(u.grads) == pytest.approx(math.sqrt(1e-6 + n * noise ** 2), rel=0.05)
    diff = {k: sent[0].grads[k] - sent[1].grads[k] for k in sent[0].grads}
    assert _norm(diff) == pytest.approx(math.sqrt(2 * n) * noise, rel=0.05)
    result = server.aggregate(task, sent)
    assert result.dp_epsilon is not None and 0 < result.dp_epsilon < 8.0


@pytest.mark.slow
def test_cli_private_run_logs_the_budget_spent(tiny_data, tmp_path, capsys):
    from fedsim_app.cli import main

    out = tmp_path / "run"
    argv = ["federate", "--sites", "A", "--data", f"A={tiny_data}", "--labels", "A=2",
            "--preset", "smoke", "--no-matrix", "--rounds", "3", "--dp-epsilon", "8",
            "--out", str(out)]
    assert main(argv) == 0
    lines = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    eps = [r["dp_epsilon"] for r in lines]
    assert eps == sorted(eps) and eps[-1] == pytest.approx(8.0, rel=0.01)
    assert json.loads((out / "federation.json").read_text())["dp"]["epsilon"] == 8.0
    assert "ε=" in capsys.readouterr().err
    assert main([*argv[:-2], "--dp-epsilon", "-1", "--out", str(tmp_path / "bad")]) == 2


def test_run_round_with_dp_replays(tiny_data, fed_cfg, tmp_path):
    def once(sub):
        clients = make_twins(tiny_data, fed_cfg, tmp_path / sub, n=2)
        server = new_server(fed_cfg, clients, None, dp=DPConfig(8.0))
        run_round(server, clients)
        return server.weights()

    a, b = once("a"), once("b")
    assert all(torch.equal(a[k], b[k]) for k in a)
