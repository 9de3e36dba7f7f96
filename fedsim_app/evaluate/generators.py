"""The generators the synthetic rows sample, trained inside the protocol per fold.

- Ours-Pre / Ours-Full: one ``fedsim train`` run per (site, fold) on the fold's training
  cases (its labelled cases with labels, the Upper Bound's extra cases as unlabelled
  images; the fold's validation and the test cases are never read). The run's checkpoint
  after phase 2 (the labelled phases) is kept as ``pre.pt`` before phase 3 continues:
  one run gives both rows.
- Sim-FL: one in-process federated run (:mod:`fedsim_app.federated`) per fold over every
  site, the same training cases per site; its shared generators with each site's local
  enhancer and latents are written as a per-site checkpoint ``export`` reads.

A fold's training cases reach the trainers through a *view* of the site's dataset: a
folder of links to the dataset's files plus a ``fedsim_split.json`` listing the fold's
cases (labelled first), so the trainers read exactly what the fold allows. Everything is
on disk under ``OUT/generators``; a rerun reuses finished checkpoints and resumes an
interrupted single-site run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from fedsim_app.errors import FedSimError
from fedsim_app.io.atomic import write_json_atomic
from fedsim_app.train.config import TrainConfig

PRE = "pre.pt"  # checkpoint after phases 1 and 2 (Ours-Pre)
FEDERATED = "federated"


def fold_view(root, labelled, unlabelled, test, out) -> Path:
    """A dataset folder at ``out`` that reads as ``root`` restricted to a fold.

    Links every entry of ``root`` (but its split file) and writes a split whose
    training cases are ``labelled`` then ``unlabelled`` (trainers label the first n).
    """
    from fedsim_app.train.data import SPLIT_FILE

    root, out = Path(root).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        link = out / entry.name
        if entry.name == SPLIT_FILE or link.exists() or link.is_symlink():
            continue
        os.symlink(entry, link)
    write_json_atomic(out / SPLIT_FILE, {"train": [*labelled, *unlabelled],
                                         "test": list(test)})
    return out


def train_site(view, site: str, n_labelled: int, cfg: TrainConfig, run_dir, *,
               log=print, device="cpu") -> tuple[Path, Path]:
    """Train (or finish) one site's generator on ``device``; returns ``(pre.pt,
    checkpoint.pt)``.

    ``pre.pt`` is the checkpoint at the end of phase 2; the run then goes on through
    phases 3 and 4. An interrupted run resumes from its checkpoint.
    """
    from fedsim_app.train.glo import CHECKPOINT
    from fedsim_app.train.session import make_trainer

    run_dir = Path(run_dir)
    final, pre = run_dir / CHECKPOINT, run_dir / PRE
    if pre.is_file() and final.is_file() and _finished(final):
        return pre, final
    resume = final.is_file()
    trainer = make_trainer(view, site, n_labelled, cfg, run_dir, resume=resume,
                           device=device)
    log(f"site {site}: training the generator ({cfg.preset} preset, "
        f"{trainer.data.n_labelled} labelled + {trainer.data.n_unlabelled} unlabelled, "
        f"{'resumed at phase ' + str(trainer.phase) if resume else 'new'}) in {run_dir}")
    (run_dir / "config.toml").write_text(trainer.cfg.to_toml())
    if trainer.phase == 1:
        trainer.run_phase1()
    if trainer.phase == 2:
        trainer.run_phase2()
    if not pre.is_file():  # the end of phase 2 is the Ours-Pre model
        shutil.copyfile(final, pre)
    if trainer.phase == 3:
        trainer.run_phase3()
    if trainer.phase == 4:
        trainer.run_phase4()
    return pre, final


def _finished(path: Path) -> bool:
    from fedsim_app.train.checkpoint import load_checkpoint
    from fedsim_app.train.glo import is_finished

    return is_finished(load_checkpoint(path))


def train_federated(views: dict, labels: dict[str, int], cfg: TrainConfig, run_dir, *,
                    rounds: int | None = None, log=print) -> dict[str, Path]:
    """Federated generator over ``views`` (``{site: dataset view}``), in process, for
    ``rounds`` rounds (None: the preset's full schedule).

    Returns ``{site: checkpoint}``: the server's final G_shape/G_material with the
    site's own enhancer, latents and prior, in the training checkpoint format.
    """
    from fedsim_app.federated.inprocess import make_clients, new_server, run_inprocess
    from fedsim_app.federated.server import CHECKPOINT, FedServer

    run_dir = Path(run_dir)
    outs = {s: run_dir / f"site_{s}.pt" for s in views}
    if all(p.is_file() for p in outs.values()):
        return outs
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {s: str(v) for s, v in views.items()}
    clients = make_clients(data, cfg, run_dir, labels)
    if (run_dir / CHECKPOINT).is_file():
        server = FedServer.resume(run_dir)
    else:
        server = new_server(cfg, clients, run_dir, rounds=rounds)
        server.save()
    log(f"Sim-FL: federated generator over sites {', '.join(views)} "
        f"({server.plan.total} rounds, {cfg.preset} preset, from round {server.round}) "
        f"in {run_dir}")
    run_inprocess(server, clients)
    for client in clients:
        _write_site_checkpoint(outs[client.key], server, client, cfg)
    return outs


def _write_site_checkpoint(path: Path, server, client, cfg: TrainConfig) -> Path:
    """Site ``client``'s finished checkpoint: the server's shared generators with the
    site's own parts and G_material's BatchNorm statistics calibrated at that site (the
    server's buffers are no site's)."""
    from fedsim_app.federated.bundle import federated_site_state
    from fedsim_app.train.checkpoint import save_checkpoint

    return save_checkpoint(path, federated_site_state(server.state_dict(),
                                                      client.state_dict(),
                                                      source=f"site {client.key}"))


class Generators:
    """Lazily trained generators of one evaluation, cached on disk under ``out``.

    Parameters
    ----------
    sites : ``{site: (dataset root, SiteSplit)}``
    cfg : the generators' training configuration
    out : ``OUT/generators``
    fed_rounds : rounds of the federated generator (None: the preset's full schedule)
    device : where each site's own generator trains (the federated one runs on the CPU)
    """

    def __init__(self, sites: dict, cfg: TrainConfig, out, *, fed_rounds=None, log=print,
                 device="cpu"):
        self.sites, self.cfg, self.out, self.log = sites, cfg, Path(out), log
        self.fed_rounds, self.device = fed_rounds, device

    def view(self, site: str, k: int) -> tuple[Path, int]:
        root, split = self.sites[site]
        fold = split.folds[k]
        view = fold_view(root, fold.labelled, fold.extra, split.test,
                         self.out / site / f"fold{k}" / "data")
        return view, len(fold.labelled)

    def ours(self, site: str, k: int) -> tuple[Path, Path]:
        """``(Ours-Pre, Ours-Full)`` checkpoints of ``site`` at fold ``k``."""
        view, n_lab = self.view(site, k)
        return train_site(view, site, n_lab, self.cfg, self.out / site / f"fold{k}" / "run",
                          log=self.log, device=self.device)

    def federated(self, k: int) -> dict[str, Path]:
        """``{site: Sim-FL checkpoint}`` at fold ``k`` (needs two or more sites)."""
        if len(self.sites) < 2:
            raise FedSimError("Sim-FL needs two or more sites (pass --data for each)")
        views, labels = {}, {}
        for site in self.sites:
            views[site], labels[site] = self.view(site, k)
        return train_federated(views, labels, self.cfg, self.out / FEDERATED / f"fold{k}",
                               rounds=self.fed_rounds, log=self.log)


def describe(cfg: TrainConfig) -> str:
    """One line naming the generators' training settings (for the report)."""
    keep = ("preset", "label_size", "material_size", "phase1_epochs", "phase2_epochs",
            "phase3_epochs", "slices_per_step", "seed")
    return json.dumps({k: getattr(cfg, k) for k in keep})
