"""The rows of the paper's Table 3, per site and fold, resumable.

Rows (the U-Net and schedule are the same for all, :mod:`.unet`):

- ``lower``: the fold's labelled real volumes only (the site's label budget)
- ``upper``: every training volume of the fold labelled
- ``fix-mat``: pre-train on a ``fedsim export`` of the atlas SSM + Fix-Mat model, fine-tune
- ``ours-pre`` / ``ours-full``: the same from the site's generator after the labelled
  phases / after the semi-supervised phase: a checkpoint passed by the user, else trained
  here per fold (:mod:`.generators`: one run gives both)
- ``direct-fl``: the U-Net trained federatedly (FedAvg) on every site's labelled volumes
  (:func:`fedsim_app.federated.direct_fl.train_direct_fl`), then fine-tuned locally
- ``sim-fl``: pre-train on an export of the federatedly trained generator, fine-tune

Every row's U-Net of a site is also scored on the site's test patients re-rendered by each
other site's Ours-Full enhancer (OOD, :mod:`.ood`). A row whose ingredient is missing is
recorded as ``{"not_run": why}``. Each (site, row, fold) result is its own JSON file under
``out/<site>/<row>/``; a rerun skips what exists, and trained generators, the Direct-FL
U-Net and exports are reused from disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fedsim_app.device import resolve_device
from fedsim_app.errors import FedSimError
from fedsim_app.evaluate.folds import NotRun, clock, describe, run_folds, summarise
from fedsim_app.evaluate.metrics import dice_scores
from fedsim_app.evaluate.plots import example_slices
from fedsim_app.evaluate.splits import make_split, read_split, write_split
from fedsim_app.evaluate.unet import (
    PRESETS,
    UNetConfig,
    predict,
    pretrain_finetune,
)
from fedsim_app.train.config import TrainConfig
from fedsim_app.train.config import preset as train_preset

ROWS = ("lower", "upper", "fix-mat", "ours-pre", "ours-full", "direct-fl", "sim-fl")
TITLES = {"lower": "Lower Bound", "upper": "Upper Bound", "fix-mat": "Fix-Mat",
          "ours-pre": "Ours-Pre", "ours-full": "Ours-Full", "direct-fl": "Direct-FL",
          "sim-fl": "Sim-FL"}
#: rows whose synthetic data come from a trained generator (passed, or trained here)
CHECKPOINT_ROWS = ("ours-pre", "ours-full", "sim-fl")
SYNTHETIC_ROWS = ("fix-mat",) + CHECKPOINT_ROWS
AIR_HU = -1000.0
DIRECT_FL_MISSING = ("fedsim_app.federated.direct_fl is not on this branch (the federated "
                     "U-Net training); merge the federated branch")
#: the generators' training per preset (fields of fedsim_app.train.config.TrainConfig)
GENERATOR_PRESETS = {
    "full": ("paper", {}),
    "quick": ("cpu", {}),
    "smoke": ("smoke", {"phase1_epochs": 1, "phase2_epochs": 1, "phase3_epochs": 1,
                        "coarse_matrix": False}),
}
#: FedAvg local steps per round of Direct-FL (rounds = pre-training steps / these)
FL_LOCAL_STEPS = {"full": 20, "quick": 10, "smoke": 2}
#: Sim-FL's federated rounds (None: the generator preset's full schedule, as many rounds
#: per phase as the largest site's single-site run has steps, so Sim-FL's generator trains
#: as long as each Ours one; the quick one's 780 rounds take about 7 minutes on the CPU)
FED_ROUNDS = {"full": None, "quick": None, "smoke": None}


@dataclass(frozen=True)
class EvalConfig:
    """Sizes and seeds of one evaluation (the same for every row)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    size: int = 64
    folds: int = 5
    n_synthetic: int = 40
    seed: int = 0
    large_budget: bool = False
    generator: TrainConfig = field(default_factory=TrainConfig)
    fl_local_steps: int = 20
    fed_rounds: int | None = None
    ood: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def preset(name: str, *, folds: int | None = None, seed: int = 0,
           device: str = "auto", size: int | None = None) -> EvalConfig:
    """``full`` (GPU), ``quick`` (one fold, 64³, short schedules: a CPU) or ``smoke``
    (tests); ``device`` runs the U-Nets (``auto``: a CUDA GPU when torch sees one);
    ``size`` replaces the preset's grid (the previous round's ``--quick`` was 32³)."""
    sizes = {"full": (128, 5, 100), "quick": (64, 1, 12), "smoke": (32, 1, 2)}
    if name not in sizes:
        raise FedSimError(f"--preset {name!r}: use one of {', '.join(sizes)}")
    grid, n_folds, n_syn = sizes[name]
    size = size or grid
    if size < PRESETS[name].roi or size % 16:
        raise FedSimError(f"--size {size}: use a multiple of 16 of at least the U-Net's "
                          f"{PRESETS[name].roi}³ patch for --preset {name}")
    unet = PRESETS[name]
    base, overrides = GENERATOR_PRESETS[name]
    resolve_device(device)  # refuse a device that is not there before any work
    return EvalConfig(unet=UNetConfig(**{**unet.to_dict(), "seed": seed, "device": device}),
                      size=size,
                      folds=folds or n_folds, n_synthetic=n_syn, seed=seed,
                      generator=train_preset(base, seed=seed, **overrides),
                      fl_local_steps=FL_LOCAL_STEPS[name], fed_rounds=FED_ROUNDS[name])


def site_grid(site: str, size: int):
    """The evaluation grid of a site: the export model's label grid at ``size``³."""
    from fedsim_app.export.sample import load_export_model

    return load_export_model("atlas", site, size=size).generator.grid


def _read_cases(cases, grid) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, S) HU images and internal label codes (int8; > 0 is the whole heart)."""
    from fedsim_app.io.dataset import load_case
    from fedsim_app.io.errors import DataError
    from fedsim_app.io.resample import resample_to_grid

    images, labels = [], []
    for case in cases:
        try:
            image, label = load_case(case)
        except DataError as exc:
            raise FedSimError(f"{exc.path}: {exc.problem}") from None
        if label is None:
            raise FedSimError(f"{case.image}: no label — evaluation needs every case labelled "
                              "(the budget decides which labels a row sees)")
        images.append(resample_to_grid(image, grid, fill_value=AIR_HU).array)
        labels.append(resample_to_grid(label, grid).array)
    return np.stack(images).astype(np.float32), np.stack(labels).astype(np.int8)


def site_cases(root) -> tuple[dict, list[str], list[str]]:
    """``({id: CaseFiles}, pool ids, test ids)``: the test split as training reads it, the
    pool is every other case (the cohort's train and val)."""
    from fedsim_app.train.data import TrainDataError, split_cases

    try:
        split = split_cases(root)
    except TrainDataError as exc:
        raise FedSimError(str(exc)) from None
    from fedsim_app.io.layouts import index_dataset

    by_id = {c.case_id: c for c in index_dataset(root).cases}
    test = [c.case_id for c in split["test"]]
    pool = sorted(set(by_id) - set(test))
    if not test:
        raise FedSimError(f"{root}: no test cases — add cases or a fedsim_split.json")
    return by_id, pool, test


def export_synthetic(row: str, site: str, out: Path, cfg: EvalConfig,
                     checkpoint=None) -> tuple[np.ndarray, np.ndarray]:
    """Export (or reuse) ``cfg.n_synthetic`` cases of a row's model and read them back."""
    from fedsim_app.export.dataset import export_dataset
    from fedsim_app.export.sample import load_export_model, resolve_checkpoint
    from fedsim_app.io.layouts import index_dataset

    if checkpoint is not None and str(checkpoint) != "atlas" and \
            resolve_checkpoint(checkpoint) is None:
        raise FedSimError("no default checkpoint ships yet (assets/checkpoints/default.pt) — "
                          "omit --checkpoint to train the generators here")
    model = load_export_model(checkpoint or "atlas", site, size=cfg.size)
    if row == "ours-full" and not model.source["training"].get("phase3_prior"):
        raise FedSimError(f"{checkpoint}: the run has not finished the semi-supervised "
                          "phase (no phase-3 prior) — pass it as ours-pre, or train on")
    summary = export_dataset(model, n=cfg.n_synthetic, out=out, seed=cfg.seed)
    cases = index_dataset(summary.root).cases
    return _read_cases(cases, model.generator.grid)


@dataclass
class SiteState:
    """A site's data on its evaluation grid and its recorded split."""

    root: Path
    split: object
    vol: dict  # case id -> (image HU, label codes)

    def stack(self, case_ids) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([self.vol[i][0] for i in case_ids]),
                np.stack([self.vol[i][1] for i in case_ids]))


def _prepare_site(site: str, root, out: Path, cfg: EvalConfig) -> SiteState:
    by_id, pool, test = site_cases(root)
    split_path = out / site / "split.json"
    if split_path.is_file():
        split = read_split(split_path)
        if (split.seed, len(split.folds)) != (cfg.seed, cfg.folds):
            raise FedSimError(f"{split_path}: recorded with seed {split.seed} and "
                              f"{len(split.folds)} fold(s), asked for seed {cfg.seed} and "
                              f"{cfg.folds} — rerun with those settings or use a new --out")
    else:
        split = make_split(site, pool, test, seed=cfg.seed, folds=cfg.folds,
                           large_budget=cfg.large_budget)
        split_path.parent.mkdir(parents=True, exist_ok=True)
        write_split(split_path, split)
    ids = sorted(set(pool) | set(test))
    images, labels = _read_cases([by_id[i] for i in ids], site_grid(site, cfg.size))
    return SiteState(Path(root), split,
                     {i: (images[n], labels[n]) for n, i in enumerate(ids)})


def run_table3(data: dict, out, cfg: EvalConfig, *, checkpoints: dict | None = None,
               rows=ROWS, log=print, info: dict | None = None) -> dict:
    """Run (or resume) Table 3 on ``data`` (``{site: dataset folder}``) into ``out``.

    ``checkpoints`` maps ``(row, site)`` to a checkpoint for the rows in
    :data:`CHECKPOINT_ROWS`; rows without one train their generator here. Returns
    ``results[site][row]`` for :mod:`.report`; ``info`` (a dict) receives what making
    each ingredient took (``seconds``) and the OOD cases not made (``notes``).
    """
    from fedsim_app.evaluate.ingredients import Ingredients

    out = Path(out)
    sites = {s: _prepare_site(s, root, out, cfg) for s, root in data.items()}
    ing = Ingredients(sites, out, cfg, checkpoints or {}, log=log)
    results: dict = {}
    for site, st in sites.items():
        results[site] = {}
        first = st.split.folds[0].labelled[0]
        examples = [(f"site {site} real ({first})", *st.vol[first])]
        for row in rows:
            results[site][row] = _run_row(row, site, st, ing, out, cfg, log,
                                          examples=examples)
        example_slices(out / site / "examples.png", examples)
    if info is not None:
        info.update(seconds=dict(ing.seconds), cpu_seconds=dict(ing.cpu_seconds),
                    notes=list(ing.notes))
    return results


def _run_row(row, site, st: SiteState, ing, out: Path, cfg: EvalConfig, log, *,
             examples: list) -> dict:
    realism: list = []  # the row's C2ST, measured on fold 0's synthetic data

    def compute(fold) -> dict:
        try:
            synthetic, init, source = ing.for_row(row, site, fold.index)
        except FedSimError as exc:  # a missing or unusable ingredient: the row is not run
            raise NotRun(" ".join(str(exc).split())) from None
        if synthetic is not None and fold.index == 0:
            examples.append((f"{TITLES[row]} (synthetic)", synthetic[0][0], synthetic[1][0]))
            realism.append(ing.realism(site, fold, synthetic))
        ood_sets = ing.ood(site, fold.index)  # made (or read) before the U-Net's clock
        ids = fold.labelled + (fold.extra if row == "upper" else ())
        rec: dict = {"site": site, "row": row, "train_ids": list(ids),
                     "val_ids": list(fold.val), "test_ids": list(st.split.test)}
        with clock(rec):
            net, rec["log"] = pretrain_finetune(cfg.unet, st.stack(ids), synthetic=synthetic,
                                                val=st.stack(fold.val), init=init)
            test_x, test_y = st.stack(st.split.test)
            rec["test_dice"] = dice_scores(predict(net, test_x, cfg.unet), test_y).tolist()
            rec["ood_dice"] = {t: dice_scores(predict(net, x, cfg.unet), y).tolist()
                               for t, (x, y) in ood_sets.items()}
        rec.update(realism=realism[0] if realism else None, source=source)
        return rec

    try:
        records = run_folds(st.split.folds, out / site / row, cfg.to_dict(), compute)
    except NotRun as exc:
        log(f"site {site} {TITLES[row]}: not run: {exc}")
        return {"not_run": str(exc)}
    # every fold's U-Net (training, validation, test and OOD passes, measured when it ran);
    # what the ingredients took is recorded once per ingredient (Ingredients.seconds)
    res = summarise(records)
    log(f"site {site} {describe(TITLES[row], res)}")
    ood: dict = {}
    for r in records:
        for t, d in r.get("ood_dice", {}).items():
            ood.setdefault(t, []).append(d)
    if ood:
        res["ood"] = ood
    found = [r["realism"] for r in records if r.get("realism") is not None]
    if found:
        res["realism"] = found[-1]
    if row == "upper" and not any(f.extra for f in st.split.folds):
        res["note"] = ("Upper Bound saw the same labelled cases as Lower Bound: the site has "
                       "no training cases beyond the budget and validation")
    return res
