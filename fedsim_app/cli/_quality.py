"""The figures ``fedsim train`` and ``fedsim federate`` print when a run ends.

Each site's finished model is scored on its dataset's test split
(:func:`~fedsim_app.train.quality.evaluate_dataset`); the figures are printed with the
targets they miss and written to ``RUN/quality.json``::

    {"effort": "full", "sites": {"A": {"shape_iou": ..., "test_volumes": 4,
                                       "seconds": 80.1}, ...}}

A site whose dataset has no test split (or another problem with it) gets a line saying
why it was skipped, and Ctrl-C while scoring keeps the sites scored so far: either way
the command still succeeds, the run being done and checkpointed.
"""

from __future__ import annotations

from pathlib import Path

EFFORTS = ("full", "quick", "off")


def add_quality_option(parser, what: str) -> None:
    parser.add_argument(
        "--quality", choices=EFFORTS,
        help=f"score {what} on the test split of its dataset at the end (issue 9's "
        "figures; printed with the targets missed and written to RUN/quality.json): full "
        "(default; 1–3 minutes a site at the cpu preset), quick (rough figures in "
        "seconds; the smoke preset's default) or off")


def effort_for(choice: str | None, preset: str) -> str:
    """The ``--quality`` given, else quick for the smoke preset and full otherwise."""
    return choice or ("quick" if preset == "smoke" else "full")


def report_quality(models: dict, folders: dict, out, effort: str, *, device="cpu",
                   train: dict | None = None) -> dict:
    """Score ``models`` (``{key: SiteModel}``) on the datasets ``folders`` (``{key:
    dataset folder}``; ``train``: ``{key: SiteData}`` already read), print each site's
    figures and write those scored to ``out``/quality.json; returns them as written."""
    import json

    from fedsim_app.io.atomic import write_text_atomic
    from fedsim_app.train.quality import QUALITY_FILE

    path = Path(out) / QUALITY_FILE
    path.unlink(missing_ok=True)  # an earlier run's figures are not this model's
    sites = {}
    try:
        _score(models, folders, effort, device, train or {}, sites)
    except KeyboardInterrupt:  # Ctrl-C, or the panel's Pause: the run itself is done
        print("quality: interrupted — the run is finished and checkpointed; `--resume` on "
              "its folder scores it again", flush=True)
    written = {"effort": effort, "sites": sites}
    if sites:
        write_text_atomic(path, json.dumps(written, indent=1) + "\n")
    return written


def _score(models, folders, effort, device, train, sites) -> None:
    """Score each site into ``sites`` (filled as each is done), printing its figures."""
    import time
    from dataclasses import asdict

    from fedsim_app.errors import FedSimError
    from fedsim_app.train.quality import (
        FULL,
        QUICK,
        evaluate_dataset,
        target_misses,
        target_text,
    )

    rough = " — rough figures; --quality full gives the issue's" if effort == "quick" else ""
    for key, model in models.items():
        print(f"quality: scoring site {key}'s model on {folders[key]}'s test split "
              f"({effort})…", flush=True)
        t0 = time.perf_counter()
        try:
            q, n_test = evaluate_dataset(model.to(device), folders[key],
                                         train=train.get(key),
                                         effort=FULL if effort == "full" else QUICK)
        except FedSimError as exc:
            print(f"quality: skipped site {key} — {exc}", flush=True)
            continue
        secs = time.perf_counter() - t0
        figures = asdict(q)
        sites[key] = {**figures, "test_volumes": n_test, "seconds": round(secs, 1)}
        print(f"quality ({n_test} test volume{'s' * (n_test != 1)}, {effort}, "
              f"{secs:.0f} s{rough}): {q.line()}", flush=True)
        misses = [f"{k} {figures[k]:.3g} (target {target_text(k)})"
                  for k in target_misses(figures)]
        print(f"quality: site {key} " + ("misses " + "; ".join(misses) if misses else
                                         "meets every target of issue 9"), flush=True)
