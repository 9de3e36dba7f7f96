"""Sites and server together in one process: FedSGD over identical sites equals one
site's training, privacy of what a site sends, dropout with a minimum, resume."""

import io
import json

import pytest
import torch
from fed_helpers import make_twins

from fedsim_app.federated.client import LOCAL_STATE, FedClient, shared_parameters
from fedsim_app.federated.inprocess import SiteDropped, new_server, run_inprocess, run_round
from fedsim_app.federated.protocol import SiteUpdate
from fedsim_app.federated.server import FedServer, RoundFailed
from fedsim_app.train.checkpoint import load_checkpoint
from fedsim_app.train.session import make_trainer


def _close(a: dict, b: dict, tol=1e-5):
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=tol, atol=tol), k


@pytest.mark.slow
def test_fedsgd_over_identical_sites_equals_one_site(tiny_data, fed_cfg, tmp_path):
    # its shape initialisation as rounds too, and phase 4 at a rate of its own
    cfg = fed_cfg.replace(shape_init_steps=2, lr_phase4=fed_cfg.lr_gan / 10)
    single = make_trainer(tiny_data, "A", 2, cfg, tmp_path / "single")
    single.run()
    clients = make_twins(tiny_data, cfg, tmp_path / "fed")
    server = new_server(cfg, clients, tmp_path / "fed")
    assert server.plan.phase_rounds == (4, 0, 2, 2) and server.plan.shape_init == 2
    run_inprocess(server, clients)
    ref = {k: p.detach() for k, p in shared_parameters(single.nets).items()}
    _close(server.weights(), ref)
    for c in clients:  # and every site's own parts trained as the single site's did
        _close({k: v for k, v in c.nets.enhancer.state_dict().items()},
               single.nets.enhancer.state_dict())
        _close({"z": c.nets.z_unl.codes.detach()}, {"z": single.nets.z_unl.codes.detach()})


def test_each_site_draws_its_own_latents(tiny_data, fed_cfg, tmp_path):
    """One z for two hospitals' different hearts would pull the shared G_shape between
    them: a site's latents are seeded by the run's seed and the site, stably."""
    from fed_helpers import twin_sites

    a, b = twin_sites(2)
    za, zb, za2 = (FedClient(s, fed_cfg, tiny_data, 2, tmp_path / name,
                             build_matrix=False).nets.z_lab.codes.detach()
                   for s, name in ((a, "a"), (b, "b"), (a, "a2")))
    assert not torch.allclose(za, zb) and torch.equal(za, za2)


@pytest.mark.slow
def test_site_sends_only_shared_gradients_and_scalar_metrics(tiny_data, fed_cfg, tmp_path):
    fed_cfg = fed_cfg.replace(phase2_epochs=1)  # local-only rounds too
    clients = make_twins(tiny_data, fed_cfg, tmp_path, n=2)
    server = new_server(fed_cfg, clients, tmp_path)
    sent: list[bytes] = []
    for c in clients:
        original = c.train_round

        def recording(task, weights, original=original):
            update = original(task, weights)
            sent.append(update.to_bytes())  # the wire form, as run_round sends it
            return update
        c.train_round = recording
    run_inprocess(server, clients)
    assert len(sent) == 2 * server.plan.total
    shared = set(server.spec)
    for blob in sent:
        payload = torch.load(io.BytesIO(blob), weights_only=True)
        assert set(payload) == {"site", "round", "grads", "metrics"}
        assert set(payload["grads"]) <= shared
        assert all(isinstance(v, float) for v in payload["metrics"].values())
        assert isinstance(payload["site"], str) and isinstance(payload["round"], int)
        # nothing shaped like a volume, a slice, the latents or local weights
        n_values = sum(t.numel() for t in payload["grads"].values())
        assert n_values in (0, sum(torch.Size(s[0]).numel() for s in server.spec.values()))
    assert any(not torch.load(io.BytesIO(b), weights_only=True)["grads"]
               for b in sent)  # the local-only rounds send losses alone
    # and the latents, images and labels never equal anything sent
    for c in clients:
        for secret in (c.nets.z_lab.codes.detach(), c.data.images, c.data.labels):
            for blob in sent:
                for t in torch.load(io.BytesIO(blob),
                                    weights_only=True)["grads"].values():
                    assert t.shape != secret.shape


@pytest.mark.slow
def test_sites_calibrate_their_enhancer_at_the_last_rounds_of_phases_3_and_4(
        tiny_data, fed_cfg, tmp_path):
    cfg = fed_cfg.replace(enhancer_levels="coarse", texture_calibration=True,
                          label_size=32)  # LV interiors at 32³ to measure the texture in
    clients = make_twins(tiny_data, cfg, tmp_path, n=2)
    server = new_server(cfg, clients, tmp_path)
    calls = []
    for c in clients:
        original = c.steps.calibrate_enhancer

        def recording(prior, n_iter, c=c, original=original):
            calls.append((c.key, c.round_done + 1, prior is c.prior, n_iter))  # 0-based
            original(prior, n_iter)
        c.steps.calibrate_enhancer = recording
    run_inprocess(server, clients)
    rounds = server.plan.phase_rounds
    assert rounds[3]  # 0-based: phase 3's last round, then the run's (phase 4's)
    ends = (sum(rounds[:3]) - 1, server.plan.total - 1)
    assert sorted(calls) == [(c.key, r, True, cfg.level_refit_steps)
                             for c in clients for r in ends]
    for c in clients:  # fitted, and kept in the site's saved state
        shift = c.nets.enhancer.level_shift
        gain = c.nets.enhancer.texture_gain
        assert float((gain - 1).abs().max()) > 0.01
        assert float(shift[1:].abs().max()) > 0
        saved = load_checkpoint(c.state_dir / LOCAL_STATE)
        torch.testing.assert_close(saved["models"]["enhancer"]["level_shift"], shift)
        torch.testing.assert_close(saved["models"]["enhancer"]["texture_gain"], gain)


@pytest.mark.slow
def test_dropout_mid_round_with_a_minimum_and_rejoin(tiny_data, fed_cfg, tmp_path):
    clients = make_twins(tiny_data, fed_cfg, tmp_path)
    server = new_server(fed_cfg, clients, tmp_path, min_sites=2)

    def drop_a2_in_round_1(key, task):
        if key == "A2" and task.round == 1:
            raise SiteDropped("A2 killed")

    r0 = run_round(server, clients, before_site=drop_a2_in_round_1)
    broadcast = server.weights()
    r1 = run_round(server, clients, before_site=drop_a2_in_round_1)
    assert r0.accepted == ["A1", "A2", "A3"]
    assert r1.accepted == ["A1", "A3"] and r1.missing == ["A2"]
    assert clients[1].round_done == 0
    r2 = run_round(server, clients)  # A2 rejoins and receives the current weights
    assert r2.accepted == ["A1", "A2", "A3"]
    assert r1.rejoined == {} and r2.rejoined == {"A2": 0}  # the log says who came back
    assert json.loads((tmp_path / "rounds.jsonl").read_text().splitlines()[2])[
        "rejoined"] == {"A2": 0}
    w = {k: p.detach() for k, p in clients[1].shared.items()}
    assert not any(torch.equal(w[k], broadcast[k]) for k in w)
    # with a minimum of three, a dropout fails the round and changes nothing
    server.min_sites = 3
    before = server.weights()
    with pytest.raises(RoundFailed, match="site A3: no answer"):
        run_round(server, clients,
                  before_site=lambda k, t: (_ for _ in ()).throw(SiteDropped(k))
                  if k == "A3" else None)
    assert server.round == 3
    assert all(torch.equal(before[k], v) for k, v in server.weights().items())


@pytest.mark.slow
def test_server_and_sites_resume_from_their_checkpoints(tiny_data, fed_cfg, tmp_path):
    ref_clients = make_twins(tiny_data, fed_cfg, tmp_path / "ref", n=2)
    ref = new_server(fed_cfg, ref_clients, tmp_path / "ref")
    run_inprocess(ref, ref_clients)

    run = tmp_path / "run"
    clients = make_twins(tiny_data, fed_cfg, run, n=2)
    server = new_server(fed_cfg, clients, run)
    run_inprocess(server, clients, until=3)
    # the server dies after the sites took round 4's step but before it recorded it
    task, weights = server.next_task(), server.weights()
    for c in clients:
        c.train_round(task, weights)
    del server, clients
    server = FedServer.resume(run)
    assert server.round == 3
    clients = make_twins(tiny_data, fed_cfg, run, n=2)  # fresh processes: state from disk
    assert [c.round_done for c in clients] == [3, 3]
    run_inprocess(server, clients)
    _close(server.weights(), ref.weights(), tol=1e-6)
    for c, r in zip(clients, ref_clients, strict=True):
        _close(c.nets.enhancer.state_dict(), r.nets.enhancer.state_dict(), tol=1e-6)


def test_site_state_of_another_site_refused(tiny_data, fed_cfg, tmp_path):
    from fed_helpers import twin_sites

    from fedsim_app.train.checkpoint import CheckpointError

    a1, a2 = twin_sites(2)
    c = FedClient(a1, fed_cfg, tiny_data, 2, tmp_path, build_matrix=False)
    c.save()
    with pytest.raises(CheckpointError, match="another site"):
        FedClient(a2, fed_cfg, tiny_data, 2, tmp_path, build_matrix=False)
    assert isinstance(SiteUpdate("x", 0).nbytes, int)


@pytest.mark.slow
def test_each_site_decodes_in_its_own_ssm_and_keeps_it(tiny_data, fed_cfg, tmp_path, capsys):
    """With an SSM from labels every site builds its own from its labelled volumes, saves
    it in its local state (never in a message), resumes with it and bundles it."""
    import numpy as np

    from fedsim_app.federated.bundle import federated_site_state
    from fedsim_app.federated.server import CHECKPOINT, load_server_checkpoint
    from fedsim_app.train.checkpoint import load_checkpoint
    from fedsim_app.train.model_io import bundle_entry, load_site_models, save_bundle

    cfg = fed_cfg.replace(shape_model="labels+atlas")
    run = tmp_path / "run"
    clients = make_twins(tiny_data, cfg, run, n=2)
    err = capsys.readouterr().err
    assert "site A1: shape model: labels+atlas (2 registered heart(s)" in err, err
    for c in clients:
        assert c.shape_model is not None and c.nets.g_shape.ssm is c.shape_model
        assert np.array_equal(c.chain.ssm.modes, c.shape_model.modes)
    server = new_server(cfg, clients, run)
    run_inprocess(server, clients)

    again = make_twins(tiny_data, cfg, run, n=2)  # fresh processes: from the local states
    assert "registering" not in capsys.readouterr().err
    for c, a in zip(clients, again, strict=True):
        assert np.array_equal(a.shape_model.mean, c.shape_model.mean)
        assert np.array_equal(a.chain.ssm.modes, c.chain.ssm.modes)

    local = load_checkpoint(run / "sites" / "A1" / "local.pt")
    state = federated_site_state(load_server_checkpoint(run / CHECKPOINT), local)
    path = save_bundle([bundle_entry(state)], tmp_path / "model.pt")
    loaded = load_site_models(path)["A1"]
    assert np.array_equal(loaded.nets.g_shape.ssm.mean, clients[0].shape_model.mean)
