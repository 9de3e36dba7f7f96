"""SecAgg+ on Flower 1.42's own workflow and mod, around FedSim's ClientApp: the server
gets the sites' mean gradient (within the quantisation step) and never one site's.

The messages go through an in-memory grid (no SuperLink, no processes): every message the
workflow sends reaches the node's real ClientApp (``secaggplus_mod`` + FedSim's train
handler) with the node's own Context, as a SuperNode would deliver it.
"""

import copy
import importlib.util

import numpy as np
import pytest
import torch
from fed_helpers import make_twins

from fedsim_app.federated.protocol import RoundPlan, SiteUpdate, pack, unpack
from fedsim_app.federated.server import FedServer, RoundFailed

pytestmark = pytest.mark.skipif(importlib.util.find_spec("flwr") is None,
                                reason="Flower is not installed (the [flower] extra)")
RUN_ID = 7


class MemoryGrid:
    """Delivers each message to its node's ClientApp in this process."""

    def __init__(self, app, contexts):
        self.app, self.contexts, self.seen = app, contexts, []

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            # a copy, as over the wire: Flower's workflow sends one content object to
            # every node and its mod edits what it receives
            msg = copy.deepcopy(msg)
            msg.metadata.__dict__["_message_id"] = msg.object_id  # as the SuperLink does
            reply = self.app(message=msg, context=self.contexts[msg.metadata.dst_node_id])
            self.seen.append(reply)
            replies.append(copy.deepcopy(reply))
        return replies


@pytest.fixture
def federation(tiny_data, fed_cfg, tmp_path, monkeypatch):
    from flwr.app import Context, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from fedsim_app.federated import flower_app, flower_secagg

    # the ServerApp's task identity, which Flower stamps on the messages it creates
    for attr, value in (("_run_id", RUN_ID), ("_node_id", 1), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)
    clients = make_twins(tiny_data, fed_cfg, tmp_path)
    nodes = {101 + i: c for i, c in enumerate(clients)}
    for c in clients:
        monkeypatch.setitem(flower_app._clients, (RUN_ID, c.key), c)
    contexts = {n: Context(RUN_ID, n, {"site": c.key}, RecordDict(), {})
                for n, c in nodes.items()}
    # twin sites compute the same gradient; scale each site's so that the mean is not
    # any one of them, and keep what each site handed to the mask
    sent = {}
    real = flower_secagg.site_gradients

    def scaled(site, grads, names):
        vec = real(site, grads, names) * (1 + list(c.key for c in clients).index(site))
        sent[site] = vec.copy()
        return vec

    monkeypatch.setattr(flower_secagg, "site_gradients", scaled)
    return flower_app, flower_secagg, nodes, MemoryGrid(flower_app.client_app, contexts), sent


def test_secure_mean_equals_plain_mean_within_quantisation(federation, fed_cfg, tmp_path):
    from flwr.app import Context, RecordDict

    flower_app, secagg, nodes, grid, sent = federation
    keys = [c.key for c in nodes.values()]
    server = FedServer(fed_cfg, RoundPlan((2, 0, 1)), keys, tmp_path / "secure")
    plain = FedServer(fed_cfg, RoundPlan((2, 0, 1)), keys, tmp_path / "plain", min_sites=1)
    task = server.next_task()
    clip = 8.0
    mean, metrics = secagg.secure_round(
        grid, lambda g, m, t: g.send_and_receive(m), Context(RUN_ID, 0, {}, RecordDict(), {}),
        task, server.weights(), server.cfg.to_dict(), list(nodes), clip=clip)
    assert mean is not None and sorted(m["site"] for m in metrics) == sorted(keys)
    assert all(m["secagg_clipped"] == 0 for m in metrics)
    # four exchanges a round; no reply carries an array (the plain protocol sends the
    # gradients as an ArrayRecord; the mod empties it): the masked vectors travel as bytes
    assert len(grid.seen) == 4 * len(nodes)
    assert all(len(a) == 0 for r in grid.seen for a in r.content.array_records.values())
    expected = np.mean([sent[k] for k in keys], axis=0)
    assert not np.allclose(sent[keys[0]], expected)
    step = 2 * clip / secagg.levels(len(keys))  # one quantisation level
    err = np.abs(mean.double().numpy() - expected)
    assert err.max() <= step + 1e-6 * np.abs(expected).max(), err.max()

    # the server takes its Adam step on the secure mean as on one site's gradient (Adam
    # on the plain mean would differ where a gradient is within a quantisation step of
    # zero: Adam's eps is 1e-8, one step here 1.5e-8)
    layout, _ = pack(server.weights())
    res = server.aggregate(task, [secagg.metrics_update(m) for m in metrics],
                           secure_mean=unpack(layout, mean, server.spec))
    assert res.accepted == sorted(keys) and server.round == 1
    assert res.metrics[keys[1]]["secagg_clipped"] == 0
    plain.aggregate(plain.next_task(), [SiteUpdate(keys[0], 0, unpack(layout, mean,
                                                                      plain.spec))])
    for k, w in server.weights().items():
        assert torch.allclose(w, plain.weights()[k], atol=1e-6), k


def test_unusable_secure_mean_is_refused(fed_cfg, tmp_path):
    server = FedServer(fed_cfg, RoundPlan((2, 0, 1)), ["A", "B"], tmp_path)
    task = server.next_task()
    before = server.weights()
    mean = {k: torch.full(shape, float("nan"), dtype=dtype)
            for k, (shape, dtype) in server.spec.items()}
    with pytest.raises(RoundFailed, match="securely aggregated mean.*NaN or Inf"):
        server.aggregate(task, [SiteUpdate("A", 0), SiteUpdate("B", 0)], secure_mean=mean)
    assert server.round == 0
    assert all(torch.equal(before[k], w) for k, w in server.weights().items())
