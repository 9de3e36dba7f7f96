"""``fedsim federate``: train shape and material across sites (FedSGD), each site keeping
its data, latents, enhancer and discriminator."""

from __future__ import annotations

from fedsim_app.cli._quality import add_quality_option, effort_for, report_quality


def register(sub) -> None:
    p = sub.add_parser(
        "federate",
        help="federated training across sites: shared shape/material, local enhancers",
        description="Every round each site takes one training step on its own data and sends "
        "only the gradients of the shared generators (G_shape, G_material); the server "
        "averages them, takes one Adam step and broadcasts the new weights. Latents, "
        "enhancer and discriminator never leave a site. --runtime inprocess runs the sites "
        "one after another in this process; --runtime flower starts a local Flower "
        "SuperLink and one SuperNode per site. Ctrl-C saves the round checkpoint and exits "
        "130; --resume continues the run in RUN.",
    )
    p.add_argument("--sites", help="site keys, comma-separated (default A,B,C; with "
                   "--bundle the run's sites)")
    p.add_argument("--cohort", metavar="ROOT", default="cohort",
                   help="cohort folder written by `fedsim cohort` (default ./cohort)")
    p.add_argument("--data", action="append", default=[], metavar="KEY=DIR",
                   help="a site's dataset folder instead of its cohort dataset (repeatable)")
    p.add_argument("--labels", action="append", default=[], metavar="KEY=N",
                   help="labelled volumes of a site (default the paper's smaller budget: "
                   "A 4, B 6, C 6)")
    p.add_argument("--rounds", type=int,
                   help="rounds in all, shared over the four phases in the preset's "
                   "proportions (default: the preset's full schedule)")
    p.add_argument("--min-sites", type=int,
                   help="fewest sites a round needs to count (default: all but one)")
    p.add_argument("--preset", default="cpu", choices=("paper", "cpu", "smoke"),
                   help="resolutions and amount of work (default cpu)")
    p.add_argument("--seed", type=int, help="seed of the run (default 0)")
    p.add_argument("--runtime", default="inprocess", choices=("inprocess", "flower"),
                   help="sites in this process (default) or on local Flower SuperNodes")
    p.add_argument("--no-matrix", action="store_true",
                   help="sites project each coarse CT directly instead of building the "
                   "scanner's system matrix first (the first build takes minutes per "
                   "scanner; afterwards the matrix is cached and steps are faster)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per site process (default 1, as fedsim train; "
                   "0 leaves torch's setting)")
    p.add_argument("--dp-epsilon", type=float, metavar="E",
                   help="differential privacy of the sites' updates: each site clips its "
                   "gradients and adds Gaussian noise so that the whole run spends at most "
                   "(E, --dp-delta) (Opacus's RDP accountant); the ε spent is shown per "
                   "round (default: off)")
    p.add_argument("--dp-delta", type=float, default=1e-5, help="δ of the privacy budget "
                   "(default 1e-5)")
    p.add_argument("--dp-clip", type=float, default=1.0,
                   help="L2 norm each site clips its gradients to under DP (default 1)")
    p.add_argument("--secagg", action="store_true",
                   help="secure aggregation (Flower's SecAgg+, --runtime flower only): the "
                   "server learns only the mean of the sites' gradients, each value "
                   "clipped to ±--secagg-clip and quantised first (default: off)")
    p.add_argument("--secagg-clip", type=float, default=8.0,
                   help="bound of a gradient value under --secagg (default 8)")
    p.add_argument("--view-every", type=int, default=0, metavar="N",
                   help="every N rounds render one latent (drawn once per run) through "
                   "each site's networks and scanner into RUN/views (in-process runtime; "
                   "default 0: off)")
    add_quality_option(p, "each site's model")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN (its settings are used)")
    p.add_argument("--bundle", nargs="?", const="", metavar="FILE",
                   help="write the model of the run in RUN and exit (no training): the "
                   "server's G_shape/G_material with each site's enhancer, latents, prior "
                   "and BatchNorm statistics, one file the Explorer, fedsim export and "
                   "fedsim evaluate load (default FILE: RUN/model.pt; a finished run "
                   "writes it by itself). With --sites B only site B: what a hospital "
                   "bundles for itself")
    p.add_argument("--site-state", action="append", default=[], metavar="KEY=PATH",
                   help="with --bundle: a site's local.pt (or its folder) outside RUN")
    p.add_argument("--half", action="store_true",
                   help="with --bundle: store the networks in float16 (half the size; the "
                   "shipped default checkpoint is written so)")
    p.set_defaults(func=run)


def _pairs(items, what, cast=str) -> dict:
    from fedsim_app.errors import FedSimError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise FedSimError(f"--{what} {item!r}: write it as KEY=VALUE, e.g. A=...")
        try:
            out[key.strip()] = cast(value.strip())
        except ValueError:
            raise FedSimError(f"--{what} {item!r}: {value!r} is not a number") from None
    return out


def _site_keys(text: str) -> tuple[str, ...]:
    from fedsim_app.errors import FedSimError

    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    if len(set(keys)) != len(keys) or not keys:
        raise FedSimError(f"--sites {text!r}: name each site once, e.g. A,B,C")
    return keys


def _bundle(args) -> int:
    """``--bundle``: the run's model, from its server checkpoint and the sites' states."""
    from fedsim_app.federated.bundle import bundle_run

    keys = _site_keys(args.sites) if args.sites else None
    path = bundle_run(args.out, args.bundle or None, sites=keys,
                      states=_pairs(args.site_state, "site-state"), half=args.half)
    print(f"model of the federated run {args.out}: {path}")
    return 0


def _bundle_finished(out, runtime):
    """A finished run writes its model (returns its path); a site that cannot be bundled
    is a note, not a failure (the run itself is done and checkpointed): returns None."""
    import sys

    from fedsim_app.errors import FedSimError
    from fedsim_app.federated.bundle import bundle_run

    try:
        path = bundle_run(out, runtime=runtime)
    except FedSimError as exc:
        print(f"fedsim federate: note: no model written: {exc}", file=sys.stderr)
        return None
    print(f"model (the Explorer, fedsim export --checkpoint): {path}", flush=True)
    return path


def _finished(args, fed) -> None:
    """A finished run: its model written, then scored on each site's test split."""
    path = _bundle_finished(args.out, fed.runtime)
    effort = effort_for(args.quality, fed.config.preset)
    if path is not None and effort != "off":
        from fedsim_app.train.model_io import load_site_models

        report_quality(load_site_models(path), fed.data, args.out, effort)


def _federation(args):
    from fedsim_app.errors import FedSimError
    from fedsim_app.federated.dp import DPConfig
    from fedsim_app.federated.session import Federation, check_new_run, site_data_folders
    from fedsim_app.sites import get_site
    from fedsim_app.train.config import preset
    from fedsim_app.train.data import LABEL_BUDGETS

    keys = _site_keys(args.sites or "A,B,C")
    for k in keys:
        get_site(k)  # an unknown key fails here, with the known ones listed
    check_new_run(args.out)
    labels = {k: LABEL_BUDGETS.get(k, (4,))[0] for k in keys}
    labels.update(_pairs(args.labels, "labels", int))
    data = _pairs(args.data, "data")
    stray = sorted((set(labels) | set(data)) - set(keys))
    if stray:
        raise FedSimError(f"--data/--labels name site(s) {', '.join(stray)} not in --sites")
    overrides = {"seed": args.seed} if args.seed is not None else {}
    if args.no_matrix:
        overrides["coarse_matrix"] = False
    cfg = preset(args.preset, **overrides)
    min_sites = args.min_sites if args.min_sites is not None else max(1, len(keys) - 1)
    if args.view_every < 0:
        raise FedSimError(f"--view-every {args.view_every}: give a number of rounds ≥ 0")
    if args.view_every and args.runtime == "flower":
        raise FedSimError("--view-every: the views are drawn in-process only (on Flower "
                          "each site's networks live in its SuperNode); drop it or use "
                          "--runtime inprocess")
    return Federation(keys, site_data_folders(keys, args.cohort, data), labels, args.rounds,
                      min_sites, args.runtime, cfg, build_matrix=not args.no_matrix,
                      dp=None if args.dp_epsilon is None else DPConfig(
                          args.dp_epsilon, args.dp_delta, args.dp_clip),
                      view_every=args.view_every)


class _Bar:
    """One bar over the rounds, the sites' latest losses beside it."""

    def __init__(self, total, initial):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, desc="rounds", unit="round")

    def __call__(self, result) -> None:
        t = result.task
        losses = " ".join(
            f"{site}:" + ",".join(f"{k}={v:.3g}" for k, v in list(m.items())[:2])
            for site, m in result.metrics.items())
        eps = result.dp_epsilon
        self.bar.set_description(f"phase {t.phase} {t.kind}"
                                 + ("" if eps is None else f" ε={eps:.2f}"))
        self.bar.set_postfix_str(losses, refresh=False)
        for why in result.rejected.values():
            self.bar.write(f"round {t.round + 1}: update rejected: {why}")
        if result.missing:
            self.bar.write(f"round {t.round + 1}: no answer from site(s) "
                           f"{', '.join(result.missing)}; continued with "
                           f"{', '.join(sorted(result.accepted))}")
        for site, last in result.rejoined.items():
            self.bar.write(f"round {t.round + 1}: site {site} rejoined (last answered round "
                           f"{last + 1}) and trained on the current shared weights")
        self.bar.update(1)

    def close(self):
        self.bar.close()


def run(args) -> int:
    import dataclasses
    import signal
    import sys

    from fedsim_app.federated.inprocess import Interrupted
    from fedsim_app.federated.session import load_federation

    if args.bundle is not None:
        return _bundle(args)
    if args.half:
        from fedsim_app.errors import FedSimError

        raise FedSimError("--half sets how --bundle stores the networks: give it with "
                          "--bundle")
    _check_secagg(args, None if args.resume else args.runtime)
    fed = load_federation(args.out) if args.resume else _federation(args)
    _check_secagg(args, fed.runtime)
    if args.threads > 0:
        import os

        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # Flower's site processes
    if fed.runtime == "flower":
        return _run_flower(fed, args)

    from fedsim_app.federated.inprocess import make_clients, new_server, run_inprocess
    from fedsim_app.federated.server import FedServer

    clients = make_clients(fed.data, fed.config, args.out, fed.labels,
                           build_matrix=fed.build_matrix)
    if args.resume:
        server = FedServer.resume(args.out)
    else:
        server = new_server(fed.config, clients, args.out, rounds=fed.rounds,
                            min_sites=fed.min_sites, dp=fed.dp)
        # the sites' dataset counts, for the panel's cards (each site reports them)
        fed = dataclasses.replace(fed, sizes={c.key: list(c.sizes) for c in clients})
        fed.save(args.out)
        server.save()
    stop = {"requested": False}

    def request_stop(signum, frame):
        # finish the round, keep its checkpoint, then stop; a second Ctrl-C stops at once
        stop["requested"] = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request_stop)
    bar = _Bar(server.plan.total, server.round)
    try:
        run_inprocess(server, clients, progress=bar, should_stop=lambda: stop["requested"],
                      view_every=fed.view_every)
    except Interrupted:
        bar.close()
        print(f"\nfedsim federate: interrupted after round {server.round}; checkpoint "
              f"{args.out}/server.pt (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    print(f"federated {len(clients)} sites ({', '.join(c.key for c in clients)}) for "
          f"{server.round} rounds: {args.out}")
    _finished(args, fed)
    return 0


def _check_secagg(args, runtime: str | None) -> None:
    from fedsim_app.errors import FedSimError

    if not args.secagg_clip > 0:
        raise FedSimError(f"--secagg-clip must be > 0, got {args.secagg_clip}")
    if args.secagg and runtime not in (None, "flower"):
        raise FedSimError("--secagg runs Flower's SecAgg+ protocol: use it with "
                          "--runtime flower")


def _run_flower(fed, args) -> int:
    import sys
    from types import SimpleNamespace

    from fedsim_app.federated.flower_launch import run_flower
    from fedsim_app.federated.protocol import RoundTask

    bar = {}

    def progress(line: dict) -> None:
        # the ServerApp's round log, one line per round
        if "bar" not in bar:
            bar["bar"] = _Bar(None, line["round"])
        result = SimpleNamespace(task=RoundTask.from_dict(line), metrics=line["metrics"],
                                 rejected=line["rejected"], missing=line["missing"],
                                 accepted=line["accepted"],
                                 rejoined=line.get("rejoined", {}),
                                 dp_epsilon=line.get("dp_epsilon"))
        bar["bar"](result)

    try:
        status = run_flower(fed, args.out, resume=args.resume, progress=progress,
                            secagg_clip=args.secagg_clip if args.secagg else 0.0)
    except KeyboardInterrupt:
        print(f"\nfedsim federate: interrupted; Flower stopped, checkpoint "
              f"{args.out}/server.pt (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        if "bar" in bar:
            bar["bar"].close()
    if status != 0:
        from fedsim_app.federated.server import load_server_checkpoint

        state = load_server_checkpoint(f"{args.out}/server.pt")
        print(f"fedsim federate: the Flower run stopped at round {state['round']} of "
              f"{sum(state['plan']['phase_rounds'])}; see {args.out}/flower/*.log "
              "(continue with --resume)", file=sys.stderr)
        return status
    print(f"federated {len(fed.sites)} sites on Flower: {args.out}")
    _finished(args, fed)
    return status
