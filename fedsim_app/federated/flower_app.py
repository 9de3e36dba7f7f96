"""The federation on Flower: a ``ServerApp`` and a ``ClientApp`` over the same
:class:`~fedsim_app.federated.server.FedServer` and
:class:`~fedsim_app.federated.client.FedClient` as the in-process runtime.

The only module of FedSim that imports ``flwr``. Each SuperNode is told its site through
its node config (``site``, ``data-dir``, ``state-dir``, ``labels``) and reads only that
folder; the run config names the run folder (``run-dir``) where the server keeps its
checkpoint and round log (the server alone reads it). Messages carry the task and the
run's training configuration as ``ConfigRecord``\\ s and tensors as
``ArrayRecord``\\ s; a site's reply is its :class:`SiteUpdate` and nothing else.
"""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsim_app.federated.protocol import RoundTask, SiteUpdate

QUERY, TRAIN = "query", "train"
#: how long the server waits for the SuperNodes to connect, and for one round's answers
CONNECT_TIMEOUT_S = 300.0
ROUND_TIMEOUT_S = 3600.0

server_app = ServerApp()
client_app = ClientApp()
_clients: dict = {}  # (run folder, site) -> FedClient, while this process lives


# -- the site ----------------------------------------------------------------------------
def _client(msg: Message, context: Context):
    """This node's site, built from its node config and the run's configuration as the
    server sent it (a hospital's machine has no copy of the server's run folder)."""
    from fedsim_app.federated.client import FedClient
    from fedsim_app.sites import get_site
    from fedsim_app.train.config import from_dict

    node = context.node_config
    site = str(node["site"])
    cfg = from_dict(dict(msg.content["config"]))
    key = (context.run_id, site)
    if key not in _clients:
        _clients[key] = FedClient(get_site(site), cfg, str(node["data-dir"]),
                                  int(node["labels"]), str(node["state-dir"]))
    return _clients[key]


@client_app.query()
def site_sizes(msg: Message, context: Context) -> Message:
    """The site's key and its counts of labelled and unlabelled volumes."""
    c = _client(msg, context)
    n_lab, n_unl = c.sizes
    return Message(RecordDict({"site": ConfigRecord({"site": c.key}),
                               "sizes": MetricRecord({"n_labelled": n_lab,
                                                      "n_unlabelled": n_unl})}),
                   reply_to=msg)


@client_app.train()
def site_round(msg: Message, context: Context) -> Message:
    """One round's step on this site's data; the reply is the site's update."""
    c = _client(msg, context)
    task = RoundTask.from_dict(dict(msg.content["task"]))
    weights = msg.content["weights"].to_torch_state_dict()
    payload = c.train_round(task, weights).to_payload()
    return Message(RecordDict({
        "meta": ConfigRecord({"site": payload["site"], "round": payload["round"]}),
        "grads": ArrayRecord(torch_state_dict=payload["grads"]),
        "metrics": MetricRecord(payload["metrics"]),
    }), reply_to=msg)


def update_of(reply: Message) -> SiteUpdate:
    """The :class:`SiteUpdate` a reply carries."""
    c = reply.content
    meta = c["meta"]
    grads = c["grads"].to_torch_state_dict() if len(c["grads"]) else {}
    return SiteUpdate(str(meta["site"]), int(meta["round"]), grads, dict(c["metrics"]))


# -- the server --------------------------------------------------------------------------
def _wait_for_nodes(grid: Grid, n: int) -> list[int]:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n or time.monotonic() > deadline:
            return nodes
        time.sleep(0.5)


def _sites_of(grid: Grid, nodes: list[int], fed) -> dict[str, tuple[int, tuple[int, int]]]:
    """``{site: (node id, sizes)}`` asked of every SuperNode."""
    config = ConfigRecord(fed.config.to_dict())
    msgs = [Message(RecordDict({"config": config}), dst_node_id=n, message_type=QUERY)
            for n in nodes]
    out = {}
    for reply in grid.send_and_receive(msgs, timeout=CONNECT_TIMEOUT_S):
        if reply.has_error():
            continue
        site = str(reply.content["site"]["site"])
        s = reply.content["sizes"]
        out[site] = (reply.metadata.src_node_id, (int(s["n_labelled"]), int(s["n_unlabelled"])))
    return out


@server_app.main()
def serve(grid: Grid, context: Context) -> None:
    """Run the federation's rounds to the plan's end (or ``until-round``)."""
    from fedsim_app.federated.protocol import plan_rounds
    from fedsim_app.federated.server import CHECKPOINT, FedServer
    from fedsim_app.federated.session import load_federation

    run_dir = Path(str(context.run_config["run-dir"]))
    fed = load_federation(run_dir)
    nodes = _wait_for_nodes(grid, len(fed.sites))
    sites = _sites_of(grid, nodes, fed)
    if (run_dir / CHECKPOINT).is_file():
        server = FedServer.resume(run_dir)
    else:
        plan = plan_rounds(fed.config, [sites[k][1] for k in fed.sites if k in sites],
                           fed.rounds)
        server = FedServer(fed.config, plan, list(fed.sites), run_dir,
                           min_sites=fed.min_sites)
        server.save()
    until = int(context.run_config.get("until-round", 0)) or server.plan.total
    while server.round < min(until, server.plan.total):
        t0 = time.perf_counter()
        task = server.next_task()
        weights = ArrayRecord(torch_state_dict=server.weights())
        now = sorted(grid.get_node_ids())
        if now != nodes:  # a SuperNode left or (re)joined: ask who is who again
            nodes, sites = now, _sites_of(grid, now, fed)
        live = {k: v[0] for k, v in sites.items()}
        config = ConfigRecord(server.cfg.to_dict())
        msgs = [Message(RecordDict({"task": ConfigRecord(task.to_dict()), "weights": weights,
                                    "config": config}),
                        dst_node_id=node, message_type=TRAIN)
                for node in live.values()]
        updates = [update_of(r) for r in grid.send_and_receive(msgs, timeout=ROUND_TIMEOUT_S)
                   if not r.has_error()]
        server.aggregate(task, updates, seconds=time.perf_counter() - t0)
