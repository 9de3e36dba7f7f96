"""All sites in one process, one after another: the GUI's simulation and the tests'.

The same :class:`~fedsim_app.federated.client.FedClient` and
:class:`~fedsim_app.federated.server.FedServer` as on Flower; every update goes through
its wire form (bytes) as it would between machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fedsim_app.errors import FedSimError
from fedsim_app.federated.client import FedClient
from fedsim_app.federated.protocol import SiteUpdate, plan_rounds
from fedsim_app.federated.server import CHECKPOINT, FedServer, RoundResult
from fedsim_app.train.config import TrainConfig

SITES_DIR = "sites"  # RUN/sites/<key>/: each site's local state (in-process runs only)


class SiteDropped(FedSimError):
    """A site did not answer this round (crashed, disconnected, stopped)."""


class Interrupted(Exception):
    """The run stopped at a round boundary on request; the server's checkpoint is current."""

    def __init__(self, path: Path):
        super().__init__(f"interrupted; checkpoint written to {path}")
        self.path = path


def make_clients(site_data: dict, cfg: TrainConfig, run_dir: str | Path,
                 labels: dict[str, int], *, build_matrix: bool = True) -> list[FedClient]:
    """One :class:`FedClient` per ``{site: data_dir}``, its state in ``RUN/sites/<key>``."""
    from fedsim_app.sites import get_site

    return [FedClient(get_site(key), cfg, data_dir, labels[key],
                      Path(run_dir) / SITES_DIR / key, build_matrix=build_matrix)
            for key, data_dir in site_data.items()]


def new_server(cfg: TrainConfig, clients: list[FedClient], run_dir: str | Path | None, *,
               rounds: int | None = None, min_sites: int | None = None,
               dp=None) -> FedServer:
    """A fresh server whose plan fits the clients' dataset sizes (``dp``: a
    :class:`~fedsim_app.federated.dp.DPConfig` or None)."""
    plan = plan_rounds(cfg, [c.sizes for c in clients], rounds)
    return FedServer(cfg, plan, [c.key for c in clients], run_dir, min_sites=min_sites,
                     dp=dp)


def run_round(server: FedServer, clients: list[FedClient], *,
              before_site: Callable | None = None) -> RoundResult:
    """One round: broadcast, every site's step in turn, aggregate.

    ``before_site(key, task)`` runs before each site's step (the GUI's status, tests'
    faults); a :class:`SiteDropped` from it or from the site leaves that site out.
    """
    t0 = time.perf_counter()
    task = server.next_task()
    weights = server.weights()
    updates = []
    for client in clients:
        try:
            if before_site is not None:
                before_site(client.key, task)
            update = client.train_round(task, weights)
        except SiteDropped:
            continue
        updates.append(SiteUpdate.from_bytes(update.to_bytes()))
    return server.aggregate(task, updates, seconds=time.perf_counter() - t0)


def run_inprocess(server: FedServer, clients: list[FedClient], *, until: int | None = None,
                  progress: Callable[[RoundResult], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  before_site: Callable | None = None,
                  view_every: int = 0) -> list[RoundResult]:
    """Run rounds until the plan's end (or round ``until``), in this process.

    ``view_every``: every N rounds (and before the first and after the last) render the
    run's view latent through every site into ``RUN/views``
    (:mod:`fedsim_app.federated.views`; needs the server's run folder).

    Raises
    ------
    Interrupted
        when ``should_stop()`` turns true (checked between rounds).
    RoundFailed
        when a round gets fewer usable answers than the server's minimum.
    """
    results = []
    end = server.plan.total if until is None else min(until, server.plan.total)
    view = _viewer(server, clients, view_every)
    if server.round == 0:
        view(0)
    while server.round < end:
        results.append(run_round(server, clients, before_site=before_site))
        view(server.round)
        if progress is not None:
            progress(results[-1])
        if should_stop is not None and should_stop() and server.round < end:
            path = server.save() if server.run_dir is not None else Path(CHECKPOINT)
            raise Interrupted(path)
    return results


def _viewer(server: FedServer, clients: list[FedClient], every: int) -> Callable[[int], None]:
    """``view(rounds_done)``: writes the round's view when one is due (else nothing)."""
    if every <= 0 or server.run_dir is None:
        return lambda done: None
    from fedsim_app.federated.views import due, view_latent, write_round_view

    # the run's seed, offset from the sites' generators (seed + 1) and phase 3's (+ 2)
    z = view_latent(server.run_dir, server.cfg.latent_dim, server.cfg.seed + 7)

    def view(done: int) -> None:
        if done == 0 or due(done, every, server.plan.total):
            phase = server.plan.task(max(done - 1, 0)).phase  # of the last round done
            write_round_view(server.run_dir, done, clients, z, phase=phase)
    return view
