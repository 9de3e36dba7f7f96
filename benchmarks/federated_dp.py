"""What differential privacy costs the federated model: the same in-process run without
DP and at each ε, compared on the sites' own training figures.

Usage::

    python benchmarks/federated_dp.py --cohort COHORT --rounds 150 --preset cpu \
        [--epsilons 8,1] [--labels 2] [--last 10] [--out DIR]

Every run starts from the same seed. The figures are the ones each site's phase-1 step
logs in ``rounds.jsonl``: the shape's IoU loss, 1 - mean soft IoU of the generated labels
against the site's labelled volumes (``iou``; lower is better), and the coarse material
error (``mse``, normalised intensities), per site as the mean of the last ``--last``
shared phase-1 rounds, and the ε spent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _summary(run: Path, last: int) -> dict:
    rounds = [json.loads(x) for x in (run / "rounds.jsonl").read_text().splitlines() if x]
    p1 = [r for r in rounds if r["phase"] == 1 and r["metrics"]][-last:]
    sites = sorted({s for r in p1 for s in r["metrics"]})
    per = {s: {m: statistics.fmean(r["metrics"][s][m] for r in p1 if s in r["metrics"])
               for m in ("iou", "mse")} for s in sites}
    return {"sites": per, "rounds": len(rounds), "phase1_rounds": len(p1),
            "iou": statistics.fmean(v["iou"] for v in per.values()),
            "mse": statistics.fmean(v["mse"] for v in per.values()),
            "epsilon": rounds[-1]["dp_epsilon"],
            "noise": max(r["dp_noise"] for r in rounds)}


def main() -> None:
    from fedsim_app.cli import main as fedsim

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--sites", default="A,B,C")
    ap.add_argument("--rounds", type=int, default=150)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--labels", type=int, default=2)
    ap.add_argument("--epsilons", default="8,1")
    ap.add_argument("--last", type=int, default=10)
    ap.add_argument("--out")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="fed-dp-"))
    base = ["federate", "--sites", args.sites, "--cohort", args.cohort, "--rounds",
            str(args.rounds), "--preset", args.preset, "--no-matrix", "--runtime",
            "inprocess", *[x for k in args.sites.split(",")
                           for x in ("--labels", f"{k}={args.labels}")]]
    runs = {"none": []} | {f"eps{e}": ["--dp-epsilon", e]
                           for e in args.epsilons.split(",") if e}
    for name, extra in runs.items():
        t0 = time.perf_counter()
        status = fedsim([*base, *extra, "--out", str(out / name)])
        if status != 0:
            raise SystemExit(f"the {name} run exited {status}")
        s = _summary(out / name, args.last)
        sites = "  ".join(f"{k}: IoU loss {v['iou']:.3f} mse {v['mse']:.3f}"
                          for k, v in s["sites"].items())
        print(f"{name:6s} ε spent {s['epsilon']}, noise std/site {s['noise']:.3g}; mean of "
              f"the last {s['phase1_rounds']} phase-1 rounds: IoU loss {s['iou']:.3f}, "
              f"mse {s['mse']:.3f} ({sites}); {s['rounds']} rounds in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
