"""The rows of the paper's Table 3, per site and fold, resumable.

Rows (the U-Net and schedule are the same for all, :mod:`.unet`):

- ``lower``: the fold's labelled real volumes only (the site's label budget)
- ``upper``: every training volume of the fold labelled
- ``fix-mat``: pre-train on a ``fedsim export`` of the atlas SSM + Fix-Mat model, fine-tune
- ``ours-pre`` / ``ours-full``: the same from a trained checkpoint (after the labelled
  phases / after the semi-supervised phase), when one is given for the site
- ``direct-fl``: the U-Net trained federatedly on the sites' labelled volumes
- ``sim-fl``: pre-train on an export of the federatedly trained generator, fine-tune

A row whose ingredient is missing is recorded as ``{"not_run": why}``. Each (site, row,
fold) result is its own JSON file under ``out/<site>/<row>/``; a rerun skips what exists.
Synthetic datasets are exported once per (site, row) and reused by every fold (the
generator's checkpoint is fixed; the paper retrains it per fold).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.evaluate.metrics import dice_scores
from fedsim_app.evaluate.plots import example_slices
from fedsim_app.evaluate.splits import make_split, read_split, write_split
from fedsim_app.evaluate.unet import PRESETS, UNetConfig, predict, pretrain_finetune
from fedsim_app.io.atomic import write_json_atomic

ROWS = ("lower", "upper", "fix-mat", "ours-pre", "ours-full", "direct-fl", "sim-fl")
TITLES = {"lower": "Lower Bound", "upper": "Upper Bound", "fix-mat": "Fix-Mat",
          "ours-pre": "Ours-Pre", "ours-full": "Ours-Full", "direct-fl": "Direct-FL",
          "sim-fl": "Sim-FL"}
#: rows whose synthetic data come from a checkpoint the user passes
CHECKPOINT_ROWS = ("ours-pre", "ours-full", "sim-fl")
AIR_HU = -1000.0
DIRECT_FL_MISSING = ("no federated U-Net training on this branch (fedsim federate trains "
                     "the generator, not a segmentation network)")


@dataclass(frozen=True)
class EvalConfig:
    """Sizes and seeds of one evaluation (the same for every row)."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    size: int = 64
    folds: int = 5
    n_synthetic: int = 40
    seed: int = 0
    large_budget: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def preset(name: str, *, folds: int | None = None, seed: int = 0) -> EvalConfig:
    """``full`` (GPU), ``quick`` (one fold, minutes on a CPU) or ``smoke`` (tests)."""
    sizes = {"full": (128, 5, 100), "quick": (32, 1, 12), "smoke": (32, 1, 2)}
    if name not in sizes:
        raise FedSimError(f"--preset {name!r}: use one of {', '.join(sizes)}")
    size, n_folds, n_syn = sizes[name]
    unet = PRESETS[name]
    return EvalConfig(unet=UNetConfig(**{**unet.to_dict(), "seed": seed}), size=size,
                      folds=folds or n_folds, n_synthetic=n_syn, seed=seed)


def site_grid(site: str, size: int):
    """The evaluation grid of a site: the export model's label grid at ``size``³."""
    from fedsim_app.export.sample import load_export_model

    return load_export_model("atlas", site, size=size).generator.grid


def _read_cases(cases, grid) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, S) HU images and binary whole-heart masks of cases on ``grid``."""
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
        # every internal structure code > 0 is part of the whole heart
        labels.append(resample_to_grid(label, grid).array > 0)
    return np.stack(images).astype(np.float32), np.stack(labels)


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
    from fedsim_app.export.sample import load_export_model
    from fedsim_app.io.layouts import index_dataset

    model = load_export_model(checkpoint or "atlas", site, size=cfg.size)
    if row == "ours-full" and not model.source["training"].get("phase3_prior"):
        raise FedSimError(f"{checkpoint}: the run has not finished the semi-supervised "
                          "phase (no phase-3 prior) — pass it as ours-pre, or train on")
    summary = export_dataset(model, n=cfg.n_synthetic, out=out, seed=cfg.seed)
    cases = index_dataset(summary.root).cases
    return _read_cases(cases, model.generator.grid)


def _fold_file(out: Path, site: str, row: str, k: int) -> Path:
    return out / site / row / f"fold{k}.json"


def run_table3(data: dict, out, cfg: EvalConfig, *, checkpoints: dict | None = None,
               rows=ROWS, log=print) -> dict:
    """Run (or resume) Table 3 on ``data`` (``{site: dataset folder}``) into ``out``.

    ``checkpoints`` maps ``(row, site)`` to a checkpoint for the rows in
    :data:`CHECKPOINT_ROWS`. Returns ``results[site][row]`` for :mod:`.report`.
    """
    out = Path(out)
    checkpoints = checkpoints or {}
    results: dict = {}
    for site, root in data.items():
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
        grid = site_grid(site, cfg.size)
        ids = sorted(set(pool) | set(test))
        images, labels = _read_cases([by_id[i] for i in ids], grid)
        vol = {i: (images[n], labels[n]) for n, i in enumerate(ids)}

        def stack(case_ids, vol=vol):
            return (np.stack([vol[i][0] for i in case_ids]),
                    np.stack([vol[i][1] for i in case_ids]))

        results[site] = {}
        first = split.folds[0].labelled[0]
        examples = [(f"site {site} real ({first})", *vol[first])]
        for row in rows:
            results[site][row] = _run_row(row, site, split, stack, out, cfg,
                                          checkpoints.get((row, site)), log,
                                          examples=examples)
        example_slices(out / site / "examples.png", examples)
    return results


def _ingredient(row: str, site: str, checkpoint) -> str | None:
    """Why ``row`` cannot run for ``site``, or None."""
    if row == "direct-fl":
        return DIRECT_FL_MISSING
    if row in CHECKPOINT_ROWS and checkpoint is None:
        return (f"no {TITLES[row]} checkpoint for site {site} (pass --checkpoint "
                f"{row}:{site}=RUN)")
    if checkpoint is not None and not Path(checkpoint).exists() and \
            checkpoint not in ("default", "atlas"):
        return f"checkpoint {checkpoint} does not exist"
    return None


def _run_row(row, site, split, stack, out: Path, cfg: EvalConfig, checkpoint, log, *,
             examples: list) -> dict:
    why = _ingredient(row, site, checkpoint)
    if why:
        log(f"site {site} {TITLES[row]}: not run: {why}")
        return {"not_run": why}
    synthetic = None
    t0 = time.perf_counter()
    if row in ("fix-mat",) + CHECKPOINT_ROWS:
        try:
            synthetic = export_synthetic(row, site, out / site / row / "synthetic", cfg,
                                         checkpoint=checkpoint if row != "fix-mat" else None)
        except FedSimError as exc:  # an unusable checkpoint is a missing ingredient
            why = " ".join(str(exc).split())
            log(f"site {site} {TITLES[row]}: not run: {why}")
            return {"not_run": why}
        examples.append((f"{TITLES[row]} (synthetic)", synthetic[0][0], synthetic[1][0]))
    t_export = time.perf_counter() - t0
    folds, seconds = [], []
    for fold in split.folds:
        path = _fold_file(out, site, row, fold.index)
        if path.is_file():
            done = json.loads(path.read_text())
            if done.get("config") != json.loads(json.dumps(cfg.to_dict())):
                raise FedSimError(f"{path}: finished with other settings (preset, sizes or "
                                  "seed) — rerun with those or use a new --out")
            folds.append(done["test_dice"])
            seconds.append(float(done.get("seconds", 0.0)))
            continue
        t1 = time.perf_counter()
        ids = fold.labelled + (fold.extra if row == "upper" else ())
        net, train_log = pretrain_finetune(cfg.unet, stack(ids), synthetic=synthetic,
                                           val=stack(fold.val))
        test_x, test_y = stack(split.test)
        dice = dice_scores(predict(net, test_x, cfg.unet), test_y).tolist()
        seconds.append(time.perf_counter() - t1)
        write_json_atomic(path, {"site": site, "row": row, "fold": fold.index,
                                 "train_ids": list(ids), "val_ids": list(fold.val),
                                 "test_ids": list(split.test), "test_dice": dice,
                                 "seconds": seconds[-1], "log": train_log,
                                 "checkpoint": None if checkpoint is None else str(checkpoint),
                                 "config": cfg.to_dict()})
        folds.append(dice)
    # export now + every fold's training (measured when it ran, also on a resume)
    took = t_export + sum(seconds)
    log(f"site {site} {TITLES[row]}: Dice {np.mean([np.mean(f) for f in folds]):.3f} "
        f"({len(folds)} fold(s), {took:.0f} s)")
    res = {"folds": folds, "seconds": took}
    if row == "upper" and not any(f.extra for f in split.folds):
        res["note"] = ("Upper Bound saw the same labelled cases as Lower Bound: the site has "
                       "no training cases beyond the budget and validation")
    return res
