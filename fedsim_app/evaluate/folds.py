"""One row's folds, resumable: the loop Table 3 and Table 2 share.

Each fold's result is its own JSON file (``fold<k>.json`` in the row's folder) holding
the evaluation's configuration; a rerun reads a finished fold back instead of training
again, and refuses a fold finished with other settings. A fold's U-Net work is timed in
wall and CPU seconds (:func:`clock`): with one torch thread the CPU seconds are what the
row takes on an idle core, whatever the machine's load was.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.io.atomic import write_json_atomic


class NotRun(Exception):
    """A row's ingredient is missing: the row is reported ``not run`` with the reason."""


@contextmanager
def clock(record: dict):
    """Time the block into ``record["seconds"]`` (wall) and ``record["cpu_seconds"]``
    (this process's CPU time, every thread)."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        yield record
    finally:
        record["seconds"] = time.perf_counter() - t0
        record["cpu_seconds"] = time.process_time() - c0


def run_folds(folds, folder, config: dict, compute) -> list[dict]:
    """Every fold's record, read back when finished or ``compute(fold)`` (a dict with at
    least ``test_dice`` and ``seconds``) and written to ``folder/fold<k>.json``.

    ``config`` (the evaluation's settings as a dict) is stored with each fold and must
    match a finished fold's. ``compute`` may raise :class:`NotRun`; the folds finished
    before it are kept on disk.
    """
    want = json.loads(json.dumps(config))  # tuples → lists, as the files hold them
    records = []
    for fold in folds:
        path = Path(folder) / f"fold{fold.index}.json"
        if path.is_file():
            done = json.loads(path.read_text())
            if done.get("config") != want:
                raise FedSimError(f"{path}: finished with other settings (preset, sizes, "
                                  "device or seed) — rerun with those or use a new --out")
            records.append(done)
            continue
        record = {"fold": fold.index, **compute(fold), "config": config}
        write_json_atomic(path, record)
        records.append(record)
    return records


def summarise(records: list[dict]) -> dict:
    """``{"folds": [test Dice per case, per fold], "seconds", "cpu_seconds"}`` summed over
    the folds (a fold written before CPU time was recorded counts 0 CPU seconds)."""
    return {"folds": [r["test_dice"] for r in records],
            "seconds": float(sum(r.get("seconds", 0.0) for r in records)),
            "cpu_seconds": float(sum(r.get("cpu_seconds", 0.0) for r in records))}


def describe(title: str, summary: dict) -> str:
    """The log line of a finished row: mean Dice, folds, wall and CPU time."""
    dice = np.mean([np.mean(f) for f in summary["folds"]])
    return (f"{title}: Dice {dice:.3f} ({len(summary['folds'])} fold(s), U-Net "
            f"{summary['seconds']:.0f} s wall, {summary['cpu_seconds']:.0f} s CPU)")
