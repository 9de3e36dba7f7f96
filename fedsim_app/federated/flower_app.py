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

from fedsim_app.federated import flower_secagg as secagg
from fedsim_app.federated.protocol import RoundTask, SiteUpdate, pack, tensor_spec, unpack

QUERY, TRAIN = "query", "train"
#: the app's Flower id (publisher/name of the app's pyproject, see flower_launch.APP_TOML)
APP_ID = "fedsim/fedsim-federation"
#: seconds between the server's asks for replies (Flower's send_and_receive waits 3 s;
#: at 0.02 s the SuperLink's SQLite database reported "database is locked" under load)
REPLY_POLL_S = 0.1
#: how long the server waits for the SuperNodes to connect, and for one round's answers
CONNECT_TIMEOUT_S = 300.0
ROUND_TIMEOUT_S = 3600.0
#: how long a round waits for the other sites once the minimum answered (run config
#: ``straggler-s``)
STRAGGLER_S = 60.0

server_app = ServerApp()
# SecAgg+'s mod handles the messages of a secure round; every other message passes by it
client_app = ClientApp(mods=[secagg.secagg_when_asked])
_clients: dict = {}  # (run folder, site) -> FedClient, while this process lives


# -- the site ----------------------------------------------------------------------------
def _client(config: dict, context: Context):
    """This node's site, built from its node config and the run's configuration
    (``config``) as the server sent it (a hospital's machine has no copy of the server's
    run folder)."""
    from fedsim_app.federated.client import FedClient
    from fedsim_app.sites import get_site
    from fedsim_app.train.config import from_dict

    node = context.node_config
    site = str(node["site"])
    cfg = from_dict(dict(config))
    key = (context.run_id, site)
    if key not in _clients:
        _clients[key] = FedClient(get_site(site), cfg, str(node["data-dir"]),
                                  int(node["labels"]), str(node["state-dir"]))
    return _clients[key]


@client_app.query()
def site_sizes(msg: Message, context: Context) -> Message:
    """The site's key and its counts of labelled and unlabelled volumes."""
    c = _client(msg.content["config"], context)
    n_lab, n_unl = c.sizes
    return Message(RecordDict({"site": ConfigRecord({"site": c.key}),
                               "sizes": MetricRecord({"n_labelled": n_lab,
                                                      "n_unlabelled": n_unl})}),
                   reply_to=msg)


@client_app.train()
def site_round(msg: Message, context: Context) -> Message:
    """One round's step on this site's data; the reply is the site's update (under
    SecAgg+, the gradients ``secaggplus_mod`` masks)."""
    if secagg.is_secure_fit(msg):
        return _secure_site_round(msg, context)
    c = _client(msg.content["config"], context)
    task = RoundTask.from_dict(dict(msg.content["task"]))
    spec = tensor_spec({k: p.detach() for k, p in c.shared.items()})
    weights = unpack(dict(msg.content["layout"]), _flat(msg.content["weights"]), spec)
    payload = c.train_round(task, weights).to_payload()
    layout, flat = pack(payload["grads"])
    return Message(RecordDict({
        "meta": ConfigRecord({"site": payload["site"], "round": payload["round"], **layout}),
        "grads": ArrayRecord(torch_state_dict={"flat": flat}),
        "metrics": MetricRecord(payload["metrics"]),
    }), reply_to=msg)


def _secure_site_round(msg: Message, context: Context) -> Message:
    task, layout, config, flat = secagg.read_fitins(msg)
    c = _client(config, context)
    weights = unpack(layout, flat, tensor_spec({k: p.detach() for k, p in c.shared.items()}))
    update = c.train_round(task, weights)
    clip = float(context.run_config.get("secagg-clip", secagg.CLIP)) or secagg.CLIP
    vec = secagg.site_gradients(update.site, update.grads, layout["names"])
    return secagg.fit_reply(msg, update.site, update.round, vec, update.metrics, clip)


def _flat(record: ArrayRecord):
    return record.to_torch_state_dict()["flat"]


def update_of(reply: Message, spec: dict) -> SiteUpdate:
    """The :class:`SiteUpdate` a reply carries, its gradients shaped by ``spec``."""
    c = reply.content
    meta = c["meta"]
    grads = unpack({"names": meta["names"], "sizes": meta["sizes"]}, _flat(c["grads"]), spec)
    return SiteUpdate(str(meta["site"]), int(meta["round"]), grads, dict(c["metrics"]))


# -- the server --------------------------------------------------------------------------
def _wait_for_nodes(grid: Grid, n: int) -> list[int]:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n or time.monotonic() > deadline:
            return nodes
        time.sleep(0.5)


def _exchange(grid: Grid, msgs: list[Message], timeout: float, *, enough: int,
              grace_s: float) -> list[Message]:
    """Send ``msgs`` and collect the replies: all of them, or what came ``grace_s`` after
    ``enough`` good ones did (a SuperNode killed mid-round never answers; Flower reports
    it unavailable only after its heartbeats stop for a minute or more), or what came
    within ``timeout``.

    :meth:`Grid.send_and_receive` looks for replies every 3 s, which on short rounds was
    most of a round's time; this looks every :data:`REPLY_POLL_S`.
    """
    waiting = set(grid.push_messages(msgs))
    replies: list[Message] = []
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        got = list(grid.pull_messages(waiting))
        replies.extend(got)
        waiting.difference_update(m.metadata.reply_to_message_id for m in got)
        if sum(not r.has_error() for r in replies) >= enough:
            deadline = min(deadline, time.monotonic() + grace_s)
            enough = len(msgs) + 1  # the grace starts once
        if waiting:
            time.sleep(REPLY_POLL_S)
    return replies


class _Roster:
    """Which SuperNode serves which site, kept current while the run goes on.

    A node that joins (a restarted hospital) is asked who it is without holding up the
    rounds: its answer may take long (the site loads its data first) and is picked up
    whenever it arrives; from the next round on, that site's tasks go to the new node.
    """

    def __init__(self, grid: Grid, fed):
        self.grid, self.config = grid, ConfigRecord(fed.config.to_dict())
        self.sites: dict[str, tuple[int, tuple[int, int]]] = {}  # site -> (node, sizes)
        self.asked: set[int] = set()
        self.pending: set[str] = set()  # ids of queries not answered yet

    def _ask(self, nodes) -> list[Message]:
        msgs = [Message(RecordDict({"config": self.config}), dst_node_id=n,
                        message_type=QUERY) for n in nodes]
        self.asked.update(nodes)
        return msgs

    def _take(self, replies) -> None:
        for reply in replies:
            if reply.has_error():
                continue
            site = str(reply.content["site"]["site"])
            s = reply.content["sizes"]
            self.sites[site] = (reply.metadata.src_node_id,
                                (int(s["n_labelled"]), int(s["n_unlabelled"])))

    def first(self, nodes: list[int], keys) -> None:
        """Ask the nodes present at the start; wait until every site of ``keys`` answered
        (a node that left and has not expired yet never will) or the connect timeout."""
        self.pending.update(self.grid.push_messages(self._ask(nodes)))
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while (self.pending and not set(keys) <= set(self.sites)
               and time.monotonic() < deadline):
            got = list(self.grid.pull_messages(self.pending))
            self.pending.difference_update(m.metadata.reply_to_message_id for m in got)
            self._take(got)
            time.sleep(REPLY_POLL_S)

    def refresh(self) -> dict[str, int]:
        """``{site: node}`` of the nodes online now, after asking any new node."""
        online = set(self.grid.get_node_ids())
        new = sorted(online - self.asked)
        if new:
            self.pending.update(self.grid.push_messages(self._ask(new)))
        if self.pending:
            got = list(self.grid.pull_messages(self.pending))
            self.pending.difference_update(m.metadata.reply_to_message_id for m in got)
            self._take(got)
        return {k: node for k, (node, _) in self.sites.items() if node in online}


@server_app.main()
def serve(grid: Grid, context: Context) -> None:
    """Run the federation's rounds to the plan's end (or ``until-round``)."""
    from fedsim_app.federated.protocol import plan_rounds
    from fedsim_app.federated.server import CHECKPOINT, FedServer
    from fedsim_app.federated.session import load_federation

    run_dir = Path(str(context.run_config["run-dir"]))
    fed = load_federation(run_dir)
    grace_s = float(context.run_config.get("straggler-s", STRAGGLER_S))
    roster = _Roster(grid, fed)
    roster.first(_wait_for_nodes(grid, len(fed.sites)), fed.sites)
    sites = roster.sites
    if (run_dir / CHECKPOINT).is_file():
        server = FedServer.resume(run_dir)
    else:
        plan = plan_rounds(fed.config, [sites[k][1] for k in fed.sites if k in sites],
                           fed.rounds)
        server = FedServer(fed.config, plan, list(fed.sites), run_dir,
                           min_sites=fed.min_sites, dp=fed.dp)
        server.save()
    until = int(context.run_config.get("until-round", 0)) or server.plan.total
    # run config secagg-clip > 0: shared rounds under SecAgg+ with that clipping range
    clip = float(context.run_config.get("secagg-clip", 0.0))
    secure = clip > 0

    def exchange(g, msgs, timeout):
        return _exchange(g, msgs, min(timeout, ROUND_TIMEOUT_S), enough=server.min_sites,
                         grace_s=grace_s)
    while server.round < min(until, server.plan.total):
        t0 = time.perf_counter()
        task = server.next_task()
        live = roster.refresh()
        if secure and task.shared:
            nodes = [live[k] for k in fed.sites if k in live]
            mean, metrics = secagg.secure_round(grid, exchange, context, task,
                                                server.weights(), server.cfg.to_dict(),
                                                nodes, clip=clip, timeout=ROUND_TIMEOUT_S)
            layout, _ = pack(server.weights())
            server.aggregate(task, [secagg.metrics_update(m) for m in metrics],
                             seconds=time.perf_counter() - t0,
                             secure_mean=None if mean is None else unpack(layout, mean,
                                                                          server.spec))
            continue
        layout, flat = pack(server.weights())
        weights = ArrayRecord(torch_state_dict={"flat": flat})
        config = ConfigRecord(server.cfg.to_dict())
        msgs = [Message(RecordDict({"task": ConfigRecord(task.to_dict()), "weights": weights,
                                    "layout": ConfigRecord(layout),
                                    "config": config}),
                        dst_node_id=node, message_type=TRAIN)
                for node in live.values()]
        replies = _exchange(grid, msgs, ROUND_TIMEOUT_S, enough=server.min_sites,
                            grace_s=grace_s)
        updates = [update_of(r, server.spec) for r in replies if not r.has_error()]
        server.aggregate(task, updates, seconds=time.perf_counter() - t0)
