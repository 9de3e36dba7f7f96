"""Seconds per round in-process and on local Flower, and bytes per site per round.

Usage::

    python benchmarks/federated.py --cohort COHORT --sites A,B,C --rounds 6 \
        --preset cpu [--labels 2] [--no-matrix] [--dp-epsilon 8] [--secagg] [--out DIR]

Both runtimes run the same rounds from the same seed through ``fedsim federate``.
Per-round seconds are the server's own (broadcast, every site's step, aggregation) from
``rounds.jsonl``; Flower's start and stop (SuperLink, SuperNodes, app install) are
reported separately as the wall-clock time beyond the rounds. Bytes are the gradients a
site sends per round (float32), and the size of its update's wire form (torch.save).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _run(argv: list[str]) -> float:
    from fedsim_app.cli import main

    t0 = time.perf_counter()
    status = main(argv)
    if status != 0:
        raise SystemExit(f"fedsim {' '.join(argv)} exited {status}")
    return time.perf_counter() - t0


def _rounds(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "rounds.jsonl").read_text().splitlines() if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--sites", default="A,B,C")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--labels", type=int, default=2)
    ap.add_argument("--no-matrix", action="store_true")
    ap.add_argument("--dp-epsilon", type=float,
                    help="also run in-process with differential privacy at this ε")
    ap.add_argument("--secagg", action="store_true",
                    help="also run on Flower with SecAgg+ (--secagg)")
    ap.add_argument("--runtimes", default="inprocess,flower",
                    help="which runtimes to time (default both)")
    ap.add_argument("--out")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="fedbench-"))
    keys = args.sites.split(",")
    base = ["federate", "--sites", args.sites, "--cohort", args.cohort, "--rounds",
            str(args.rounds), "--preset", args.preset,
            *[x for k in keys for x in ("--labels", f"{k}={args.labels}")],
            *(["--no-matrix"] if args.no_matrix else [])]
    results = {}
    runs = {r: ["--runtime", r] for r in args.runtimes.split(",")}
    if args.secagg:
        runs["flower+secagg"] = ["--runtime", "flower", "--secagg"]
    if args.dp_epsilon:
        runs["inprocess+dp"] = ["--runtime", "inprocess", "--dp-epsilon",
                                str(args.dp_epsilon)]
    for runtime, extra in runs.items():
        run = out / runtime
        wall = _run([*base, *extra, "--out", str(run)])
        rounds = _rounds(run)
        secs = [r["seconds"] for r in rounds]
        results[runtime] = {"wall_s": wall, "round_s": secs,
                            "median_round_s": statistics.median(secs),
                            "mean_round_s": statistics.fmean(secs),
                            "outside_rounds_s": wall - sum(secs)}
    from fedsim_app.federated.protocol import SiteUpdate

    grads = [b for r in _rounds(out / "inprocess") for b in r["bytes_sent"].values() if b]
    shared = max(grads) if grads else 0
    import torch

    wire = len(SiteUpdate("A", 0, {"w": torch.zeros(shared // 4)}, {"iou": 0.5}).to_bytes())
    print(f"rounds: {args.rounds}, sites: {args.sites}, preset: {args.preset}")
    for k, r in results.items():
        print(f"{k:12s} median {r['median_round_s']:.2f} s/round, mean "
              f"{r['mean_round_s']:.2f} s/round, wall {r['wall_s']:.1f} s "
              f"(outside rounds {r['outside_rounds_s']:.1f} s); rounds "
              f"{[round(s, 2) for s in r['round_s']]}")
    ip = results["inprocess"]
    for name in ("flower", "flower+secagg", "inprocess+dp"):
        if name in results:
            r = results[name]
            print(f"{name} over in-process per round: "
                  f"{100 * (r['mean_round_s'] / ip['mean_round_s'] - 1):+.0f} % (mean), "
                  f"{100 * (r['median_round_s'] / ip['median_round_s'] - 1):+.0f} % "
                  f"(median), {r['mean_round_s'] - ip['mean_round_s']:+.2f} s (mean)")
    print(f"bytes per site per shared round: {shared} of gradients (float32), "
          f"~{wire} on the wire (torch.save form); local-only rounds: 0 of gradients")


if __name__ == "__main__":
    main()
