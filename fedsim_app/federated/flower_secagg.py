"""Secure aggregation of the shared rounds on Flower (``fedsim federate --secagg``).

With ``--secagg`` a shared round runs Flower 1.42's SecAgg+ protocol: the server's
``SecAggPlusWorkflow`` and each site's ``secaggplus_mod``. A site masks its gradients so
that the server learns only their mean over the sites that answered; the server never
holds one site's gradients. Local-only rounds (phases 2 and 4) send no gradients and run as
without SecAgg+.

What this changes, and why (Flower 1.42's design, not FedSim's choice):

- The workflow is written for Flower's legacy strategy API: it requires a
  ``LegacyContext`` (a ``Strategy`` and a ``ClientManager``), asks the strategy for
  ``FitIns`` and hands it the aggregate as ``FitRes``. :class:`_MeanStrategy` is that
  strategy: its ``FitIns`` carry the round's task and the packed weights, and it keeps
  the mean the workflow computed.
- A round is four exchanges instead of one (setup, share keys, collect masked vectors,
  unmask), each waited for with FedSim's fast reply poll.
- Each value is clipped to ``±clip`` and stochastically quantised to ``levels`` integers
  before masking; the mean comes back within ``clip / levels`` per value of the plain mean
  (and exactly without values beyond ``clip``). Gradients travel as float64 because
  Flower quantises in the arrays' own dtype (float32 would round at 2⁻²⁴ of the range).
- The server can no longer check one site's update (NaN/Inf, names, shapes): it checks
  the mean; a site checks its own gradients before masking (:func:`site_gradients`).
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitIns, FitRes, Status, ndarrays_to_parameters
from flwr.common import parameters_to_ndarrays as to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey

from fedsim_app.federated.protocol import RoundTask, SiteUpdate, UpdateRejected, pack

#: default bound of a gradient value before quantisation (run config ``secagg-clip``)
CLIP = 8.0
MODULUS = 2 ** 32  # Flower's largest modulus
FITINS_PARAMS = "fitins.parameters"


def levels(n_sites: int) -> int:
    """Quantisation levels: the sum of ``n_sites`` quantised values and of their weights
    must stay below the modulus, and Flower rounds into int32 (so at most 2³⁰)."""
    return min(2 ** 30, MODULUS // (n_sites + 1))


def workflow(n_sites: int, clip: float, timeout: float | None) -> SecAggPlusWorkflow:
    """SecAgg+ over all sites (every site holds a share of every other's key), any two of
    them enough to unmask a site that drops out after sending its masked vector."""
    return SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=2 / 3,
                              max_weight=1.0, clipping_range=float(clip),
                              quantization_range=levels(n_sites), modulus_range=MODULUS,
                              timeout=timeout)


# -- the site ----------------------------------------------------------------------------
def secagg_when_asked(msg: Message, ctxt: Context, call_next) -> Message:
    """Flower's ``secaggplus_mod`` for the messages of a secure round; plain messages
    (queries, local-only and non-SecAgg rounds) pass straight through."""
    if RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def is_secure_fit(msg: Message) -> bool:
    return FITINS_PARAMS in msg.content.array_records


def read_fitins(msg: Message) -> tuple[RoundTask, dict, dict, torch.Tensor]:
    """``(task, layout, run config dict, flat weights)`` of a secure round's message."""
    ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    meta = json.loads(str(ins.config["fedsim"]))
    (flat,) = to_ndarrays(ins.parameters)
    return (RoundTask.from_dict(meta["task"]), meta["layout"], meta["config"],
            torch.from_numpy(np.asarray(flat, dtype=np.float32).copy()))


def site_gradients(site: str, grads: dict[str, torch.Tensor], names: list[str]
                   ) -> np.ndarray:
    """The site's gradients as one float64 vector in the order of ``names`` (the
    weights' layout: every site must line its values up alike for the masked sum),
    after the checks the server can no longer make on them."""
    if set(grads) != set(names):
        raise UpdateRejected(f"site {site}: gradients of {len(grads)} tensors do not match "
                             f"the {len(names)} shared parameters; nothing sent")
    for k, v in grads.items():
        if not torch.isfinite(v).all():
            raise UpdateRejected(f"site {site}: {k} holds NaN or Inf values; nothing sent")
    _, flat = pack({k: grads[k] for k in names})
    return flat.double().numpy()


def fit_reply(msg: Message, site: str, round_: int, flat: np.ndarray, metrics: dict,
              clip: float) -> Message:
    """The reply ``secaggplus_mod`` masks: the gradients, weight 1, and scalar metrics
    (with how many values the clip to ``±clip`` will cut)."""
    clipped = int(np.count_nonzero(np.abs(flat) > clip))
    res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([flat]), 1,
                 {**metrics, "site": site, "round": round_, "secagg_clipped": clipped})
    return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)


# -- the server --------------------------------------------------------------------------
class _MeanStrategy(Strategy):
    """The legacy strategy SecAgg+ needs: it sends one round's ``FitIns`` to the given
    nodes and keeps the mean and each site's metrics."""

    def __init__(self, fitins: FitIns, nodes: list[int]):
        self.fitins, self.nodes = fitins, nodes
        self.mean: np.ndarray | None = None
        self.metrics: list[dict] = []

    def initialize_parameters(self, client_manager):
        return None

    def configure_fit(self, server_round, parameters, client_manager):
        proxies = client_manager.all()
        return [(proxies[str(n)], self.fitins) for n in self.nodes if str(n) in proxies]

    def aggregate_fit(self, server_round, results, failures):
        if results:
            (self.mean,) = to_ndarrays(results[0][1].parameters)  # every one: the mean
            self.metrics = [dict(res.metrics) for _, res in results]
        return None, {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None


class _Exchange:
    """The workflow's grid: ``send_and_receive`` through FedSim's fast exchange."""

    def __init__(self, grid, exchange):
        self.grid, self.exchange = grid, exchange

    def send_and_receive(self, messages, *, timeout=None):
        msgs = list(messages)
        return self.exchange(self.grid, msgs, math.inf if timeout is None else timeout)

    def __getattr__(self, name):
        return getattr(self.grid, name)


def secure_round(grid, exchange, context: Context, task: RoundTask, weights: dict,
                 config: dict, nodes: list[int], *, clip: float = CLIP,
                 timeout: float | None = None):
    """Run one shared round under SecAgg+ over ``nodes``.

    Returns ``(mean, metrics)``: the sites' mean gradient as a flat float32 tensor (None
    when the protocol halted: too few sites) and each answering site's scalar metrics.
    """
    layout, flat = pack(weights)
    meta = json.dumps({"task": task.to_dict(), "layout": layout, "config": config})
    fitins = FitIns(ndarrays_to_parameters([flat.numpy()]), {"fedsim": meta})
    strategy = _MeanStrategy(fitins, nodes)
    manager = SimpleClientManager()
    for n in nodes:
        manager.register(GridClientProxy(n, grid, context.run_id))
    legacy = LegacyContext(context, strategy=strategy, client_manager=manager)
    legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: task.round + 1})
    legacy.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
    workflow(len(nodes), clip, timeout)(_Exchange(grid, exchange), legacy)
    if strategy.mean is None:
        return None, strategy.metrics
    return torch.from_numpy(strategy.mean.astype(np.float32)), strategy.metrics


def metrics_update(metrics: dict) -> SiteUpdate:
    """A site's answer to a secure round as the server sees it: its scalar metrics, no
    gradients (those reached the server only inside the mean)."""
    m = dict(metrics)
    site, round_ = str(m.pop("site")), int(m.pop("round"))
    return SiteUpdate(site, round_, {}, {k: float(v) for k, v in m.items()})
