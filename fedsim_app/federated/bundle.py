"""A federated run as a model: the server's shared generators with each site's local parts.

A run leaves ``server.pt`` (G_shape and G_material, shared) and one ``local.pt`` per site
(its latents, enhancer, discriminator, latent prior and G_material's BatchNorm statistics,
which are per site). :func:`federated_site_state` joins the server's generators with one
site's local parts into that site's training checkpoint (the format ``fedsim train``
writes, finished); :func:`bundle_run` writes several sites as one model bundle
(:mod:`fedsim_app.train.model_io`), the file the Explorer, ``fedsim export`` and
``fedsim evaluate`` load.

In a real deployment a site's local parts never leave it: each hospital bundles its own
site from the server's shared weights and its own ``local.pt``
(``sites=("B",), states={"B": PATH}``). Bundling every site of a run in one file is the
simulation's shortcut (all sites' states lie in one run folder).
"""

from __future__ import annotations

from pathlib import Path

from fedsim_app.errors import FedSimError
from fedsim_app.federated.client import LOCAL_STATE
from fedsim_app.federated.inprocess import SITES_DIR
from fedsim_app.federated.server import CHECKPOINT, load_server_checkpoint
from fedsim_app.train.checkpoint import load_checkpoint
from fedsim_app.train.model_io import RUN_MODEL as MODEL  # RUN/model.pt, every site


def site_state_path(run_dir: str | Path, key: str, runtime: str = "inprocess") -> Path:
    """Where a run of ``runtime`` keeps site ``key``'s local state: ``RUN/sites/<key>``
    in-process, ``RUN/flower/sites/<key>`` on local Flower."""
    root = Path(run_dir) / ("flower" if runtime == "flower" else "")
    return root / SITES_DIR / key / LOCAL_STATE


def federated_site_state(server: dict, local: dict, *, source: str = "local state"
                         ) -> dict:
    """One site's finished training checkpoint (as a dict) from a federated run.

    Parameters
    ----------
    server : the server's state (``server.pt``, or ``FedServer.state_dict()``)
    local : the site's local state (its ``local.pt``, or ``FedClient.state_dict()``)
    source : names the local state in errors (its path)

    Returns
    -------
    dict
        ``config``, ``site``, ``case_ids``, ``n_labelled``, ``prior``, ``models``
        (G_shape and G_material from the server, G_material's BatchNorm statistics of
        the site, the site's enhancer, latents and discriminator), ``phase`` finished and a
        ``federated`` record (the server's round, the site's last round, the sites).

    Raises
    ------
    FedSimError
        when the local state belongs to another run or site, is ahead of the server, or
        has no BatchNorm statistics yet (the run is still in phase 1).
    """
    from fedsim_app.train.glo import DONE

    key, done = str(local.get("site")), int(local.get("round_done", -1)) + 1
    if key not in server["sites"]:
        raise FedSimError(f"{source}: site {key} is not a site of this run "
                          f"({', '.join(server['sites'])}) — pass that run's server.pt")
    if local.get("config") is not None and _config(local) != _config(server):
        raise FedSimError(f"{source}: site {key}'s state comes from another run (its "
                          "configuration differs from the server's) — pass the state of "
                          "this run's site")
    if done > int(server["round"]):
        raise FedSimError(f"{source}: site {key} trained {done} rounds, the server has "
                          f"only {server['round']} — another run's state, or the server's "
                          "checkpoint is older; pass this run's files")
    stats = local.get("norm_stats")
    if stats is None:
        raise FedSimError(f"{source}: site {key} has not finished phase 1 (its "
                          "BatchNorm statistics are not calibrated yet, round "
                          f"{done}) — continue the run (--resume), then bundle it")
    material = dict(server["models"]["g_material"])
    odd = sorted(k for k, t in stats.items()
                 if k not in material or material[k].shape != t.shape)
    if odd:
        raise FedSimError(f"{source}: site {key}'s BatchNorm statistics do not fit the "
                          f"server's G_material ({', '.join(odd[:3])}) — another run's "
                          "state; pass this run's files")
    material.update(stats)
    models = dict(local["models"])
    models.update(g_shape=server["models"]["g_shape"], g_material=material)
    return {"config": server["config"], "site": key, "case_ids": list(local["case_ids"]),
            "n_labelled": int(local["n_labelled"]), "prior": local.get("prior"),
            "scan_fov_mm": local.get("scan_fov_mm", []),
            "phase": DONE, "step": 0, "models": models, "optimizers": {}, "seconds": {},
            "shape_model": local.get("shape_model"),  # the site's SSM (None: the atlas)
            "federated": {"round": int(server["round"]),
                          "rounds": int(sum(server["plan"]["phase_rounds"])),
                          "site_round": done, "sites": list(server["sites"])}}


def _config(state: dict):
    """The state's configuration as a config (a site's arrives through a message on Flower:
    compared as values, not as dicts of whatever types the transport gave back)."""
    from fedsim_app.train.config import from_dict

    return from_dict(dict(state["config"]))


def bundle_run(run_dir: str | Path, out: str | Path | None = None, *,
               sites: tuple[str, ...] | None = None, states: dict | None = None,
               runtime: str | None = None, half: bool = False) -> Path:
    """Write the model of the federated run in ``run_dir`` as a bundle.

    Parameters
    ----------
    run_dir : the run folder (``server.pt`` and, unless ``states`` says otherwise, the
        sites' local states)
    out : the bundle file (default ``RUN/model.pt``)
    sites : the sites to bundle (default every site of the run); one site is what a
        hospital bundles for itself
    states : ``{site: local.pt path}`` where a site's state lies outside the run folder
        (a hospital's own machine)
    runtime : where the run keeps its sites' states (default: ``federation.json``'s)
    half : store the networks in float16 (half the size)

    Raises
    ------
    FedSimError
        naming the file at fault: no run there, a missing or foreign site state, a site
        still in phase 1. Nothing is written then.
    """
    from fedsim_app.train.model_io import bundle_entry, save_bundle

    run_dir = Path(run_dir)
    server_path = run_dir / CHECKPOINT
    if not server_path.is_file():
        raise FedSimError(f"{run_dir}: no federated run there (no {CHECKPOINT}) — pass the "
                          "folder given to fedsim federate --out")
    server = load_server_checkpoint(server_path)
    states = dict(states or {})
    keys = tuple(sites) if sites else tuple(server["sites"])
    stray = sorted(set(keys) - set(server["sites"]))
    if stray:
        raise FedSimError(f"{server_path}: site(s) {', '.join(stray)} are not in this run "
                          f"({', '.join(server['sites'])})")
    if runtime is None:
        runtime = _runtime(run_dir)
    entries = []
    for key in keys:
        path = Path(states.get(key) or site_state_path(run_dir, key, runtime))
        if path.is_dir():
            path = path / LOCAL_STATE
        if not path.is_file():
            raise FedSimError(f"{path}: no local state of site {key} — the site has not "
                              f"answered a round yet, or its state lies elsewhere (pass "
                              f"--site-state {key}=PATH)")
        local = load_checkpoint(path)
        if str(local.get("site")) != key:
            raise FedSimError(f"{path}: the local state of site {local.get('site')}, not "
                              f"of site {key} — pass site {key}'s own state")
        entries.append(bundle_entry(federated_site_state(server, local, source=str(path)),
                                    half=half))
    return save_bundle(entries, run_dir / MODEL if out is None else out)


def _runtime(run_dir: Path) -> str:
    from fedsim_app.federated.session import META, load_federation

    return load_federation(run_dir).runtime if (run_dir / META).is_file() else "inprocess"
