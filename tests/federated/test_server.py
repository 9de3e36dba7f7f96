"""The server alone: plans, update validation, averaging, minimum sites, checkpoints."""

import json

import pytest
import torch

from fedsim_app.federated.protocol import RoundPlan, SiteUpdate, plan_rounds
from fedsim_app.federated.server import FedServer, RoundFailed
from fedsim_app.train.checkpoint import CheckpointError


@pytest.fixture
def server(fed_cfg, tmp_path):
    return FedServer(fed_cfg, RoundPlan((2, 1, 2)), ["A", "B", "C"], tmp_path, min_sites=2)


def _grads(server, value=1.0):
    return {k: torch.full(shape, value, dtype=dtype) for k, (shape, dtype) in
            server.spec.items()}


def test_plan_full_and_scaled(fed_cfg):
    fed_cfg = fed_cfg.replace(phase2_epochs=1)
    plan = plan_rounds(fed_cfg, [(2, 2), (3, 1)])
    # phase 1: epochs (a step takes every labelled volume); phases 2-4: epochs · the
    # largest site's volumes
    assert plan.phase_rounds == (2, 3, 4, 3)
    assert [plan.task(r).kind for r in range(plan.total)] == (
        ["shape_material"] * 2 + ["gan"] * 3 + ["labelled", "unlabelled"] * 2 + ["gan"] * 3)
    assert plan.task(8).step == 3 and plan.task(8).total == 4
    last = plan.task(11)  # phase 4: the enhancer's GAN steps again, local only
    assert (last.phase, last.step, last.total, last.shared) == (4, 2, 3, False)
    assert plan.shared_rounds == 6
    scaled = plan_rounds(fed_cfg, [(2, 2)], rounds=4)
    assert scaled.phase_rounds == (1, 1, 1, 1)
    assert plan_rounds(fed_cfg, [(2, 2)], rounds=12).total == 12


def test_plan_starts_phase1_with_the_shape_initialisation(fed_cfg):
    cfg = fed_cfg.replace(shape_init_steps=3, phase1_epochs=4, phase2_epochs=1)
    plan = plan_rounds(cfg, [(2, 2), (3, 1)])
    assert plan.phase_rounds == (7, 3, 4, 3) and plan.shape_init == 3
    tasks = [plan.task(r) for r in range(7)]
    assert [t.kind for t in tasks] == ["shape_init"] * 3 + ["shape_material"] * 4
    assert all(t.shared and t.lr_factor == 1.0 for t in tasks[:3])
    # the rate schedule of phase 1 proper is the single-site trainer's over its 4 steps
    from fedsim_app.train.schedule import lr_factor
    assert [t.lr_factor for t in tasks[3:]] == [lr_factor(s, 4, cfg.constant_fraction)
                                               for s in range(4)]
    assert RoundPlan.from_dict(plan.to_dict()) == plan
    old = RoundPlan.from_dict({"phase_rounds": [2, 0, 2], "constant_fraction": 0.5})
    assert old.shape_init == 0  # a run written before shape_init
    assert old.phase_rounds == (2, 0, 2, 0)  # and before phase 4
    scaled = plan_rounds(cfg, [(2, 2)], rounds=7)
    assert 1 <= scaled.shape_init < scaled.phase_rounds[0]
    assert plan_rounds(cfg, [(2, 2)], rounds=3).shape_init == 0  # one phase-1 round: IoU


def test_average_of_accepted_updates_and_one_adam_step(server):
    task = server.next_task()
    before = server.weights()
    ups = [SiteUpdate("A", 0, _grads(server, 1.0), {"iou": 0.5}),
           SiteUpdate("B", 0, _grads(server, 3.0), {"iou": 0.4})]
    res = server.aggregate(task, ups)
    assert res.accepted == ["A", "B"] and res.missing == ["C"]
    # Adam's first step moves every weight by -lr·sign(mean gradient) (≈, eps aside)
    lr = server.cfg.lr_phase1
    for k, w in server.weights().items():
        assert torch.allclose(before[k] - w, torch.full_like(w, lr), atol=1e-6)
    assert server.round == 1


@pytest.mark.parametrize("bad, words", [
    ("nan", "NaN or Inf"), ("inf", "NaN or Inf"), ("name", "unexpected tensor"),
    ("shape", "has shape"), ("dtype", "has dtype"), ("extra", "unexpected tensor"),
    ("missing", "missing gradient"), ("round", "expected round"),
    ("metric", "metric"),
])
def test_bad_update_rejected_with_site_named_and_not_averaged(server, bad, words):
    task = server.next_task()
    g = _grads(server, 5.0)
    name = next(iter(g))
    metrics = {"iou": 0.1}
    rnd = 0
    if bad == "nan":
        g[name][0] = float("nan")
    elif bad == "inf":
        g[name][..., 0] = float("inf")
    elif bad == "name":
        g["g_shape.secret"] = g.pop(name)
    elif bad == "shape":
        g[name] = g[name].reshape(-1)[:-1]
    elif bad == "dtype":
        g[name] = g[name].double()
    elif bad == "extra":
        g["z_lab.codes"] = torch.zeros(2, 32)
    elif bad == "missing":
        del g[name]
    elif bad == "round":
        rnd = 7
    elif bad == "metric":
        metrics = {"latents": torch.zeros(3)}
    ups = [SiteUpdate("A", 0, _grads(server, 1.0)), SiteUpdate("B", 0, _grads(server, 1.0)),
           SiteUpdate("C", rnd, g, metrics)]
    twin = FedServer(server.cfg, server.plan, server.sites, None, min_sites=2)
    res = server.aggregate(task, ups)
    assert list(res.rejected) == ["C"] and "site C" in res.rejected["C"]
    assert words in res.rejected["C"]
    # the same as a round with A and B alone
    twin.aggregate(task, ups[:2])
    for k, w in server.weights().items():
        assert torch.equal(w, twin.weights()[k])


def test_too_few_sites_fails_the_round_and_changes_nothing(server):
    task = server.next_task()
    before = server.weights()
    with pytest.raises(RoundFailed, match="1 usable update.*2 needed.*site C: no answer"):
        server.aggregate(task, [SiteUpdate("A", 0, _grads(server)),
                                SiteUpdate("B", 0, {k: v * float("nan") for k, v in
                                                    _grads(server).items()})])
    assert server.round == 0
    assert all(torch.equal(before[k], w) for k, w in server.weights().items())


def test_local_only_round_takes_no_gradients(server):
    for _ in range(2):
        server.aggregate(server.next_task(), [SiteUpdate(s, server.round, _grads(server))
                                              for s in "AB"])
    task = server.next_task()
    assert task.kind == "gan"
    before = server.weights()
    res = server.aggregate(task, [SiteUpdate("A", 2, {}, {"d": 1.0}),
                                  SiteUpdate("B", 2, _grads(server), {"d": 1.0}),
                                  SiteUpdate("C", 2, {}, {"d": 2.0})])
    assert "local-only" in res.rejected["B"] and res.accepted == ["A", "C"]
    assert all(torch.equal(before[k], w) for k, w in server.weights().items())


def test_checkpoint_resume_and_log(server, tmp_path):
    for _ in range(2):
        server.aggregate(server.next_task(), [SiteUpdate(s, server.round, _grads(server, 2.0))
                                              for s in "ABC"])
    # a third round whose log line was written but whose checkpoint was not
    saved = (tmp_path / "server.pt").read_bytes()
    server.aggregate(server.next_task(), [SiteUpdate(s, 2, {}) for s in "ABC"])
    (tmp_path / "server.pt").write_bytes(saved)
    back = FedServer.resume(tmp_path)
    assert back.round == 2 and back.min_sites == 2
    lines = (tmp_path / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [0, 1]
    # the resumed optimiser state continues exactly as the original would
    up = [SiteUpdate(s, 3, _grads(server, 1.0)) for s in "ABC"]
    back.aggregate(back.next_task(), [SiteUpdate(s, 2, {}) for s in "ABC"])
    back.aggregate(back.next_task(), up)
    server.aggregate(server.next_task(), up)
    for k, w in server.weights().items():
        assert torch.equal(w, back.weights()[k])


def test_resume_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no federated run"):
        FedServer.resume(tmp_path)
    torch.save({"format": "something-else"}, tmp_path / "server.pt")
    with pytest.raises(CheckpointError, match="not a FedSim federated server"):
        FedServer.resume(tmp_path)
    (tmp_path / "server.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        FedServer.resume(tmp_path)


def test_pack_round_trips_and_leaves_misfits_for_validation(server):
    from fedsim_app.errors import FedSimError
    from fedsim_app.federated.protocol import UpdateRejected, pack, unpack, validate_update

    grads = {k: torch.randn(shape) for k, (shape, _) in server.spec.items()}
    layout, flat = pack(grads)
    assert flat.ndim == 1 and flat.numel() == sum(v.numel() for v in grads.values())
    back = unpack(layout, flat, server.spec)
    assert list(back) == list(grads)
    assert all(torch.equal(back[k], v) for k, v in grads.items())
    # a tensor of a name or size the server does not know stays flat and is refused
    k0 = next(iter(grads))
    odd = {**grads, "g_shape.extra": torch.ones(3)}
    odd[k0] = torch.ones(5)
    got = unpack(*pack(odd), server.spec)
    assert got[k0].shape == (5,) and got["g_shape.extra"].shape == (3,)
    task = server.next_task()
    with pytest.raises(UpdateRejected, match="site A: unexpected tensor"):
        validate_update(SiteUpdate("A", task.round, got, {}), server.spec, task)
    with pytest.raises(FedSimError, match="carries 4"):
        unpack(layout, torch.zeros(4), server.spec)
    assert pack({})[0] == {"names": [], "sizes": []} and unpack(*pack({}), server.spec) == {}
