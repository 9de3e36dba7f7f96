"""Quality of a trained model, per site, on the cohort's held-out test split.

Run: .venv/bin/python benchmarks/train_quality.py [--checkpoint PATH|default]
         [--cohort ROOT] [--sites A,B,C] [--device cpu|cuda]

PATH is a run's checkpoint.pt (one site) or a bundle (``make assets`` writes
assets/checkpoints/default.pt, which ``default`` names). The cohort must be the one the
model was trained on (``fedsim cohort --out ROOT``; ``make assets`` writes build/cohort).
Prints one line per site, then the worst site's figures as the last line:
``shape_iou=… mat_hu_err=… enh_hu_err=… noise_ratio=… c2st=… c2st_coarse=…``
(definitions in fedsim_app/train/quality.py; targets in issue 9: shape IoU ≥ 0.85,
material ≤ 40 HU, enhancer ≤ 30 HU, noise ratio within 25 %, C2ST ≤ 0.75 with the
coarse CT ≥ 0.95).
"""

import argparse
import sys
import time
from pathlib import Path

from fedsim_app.assets import asset_path
from fedsim_app.device import resolve_device
from fedsim_app.errors import FedSimError
from fedsim_app.sites import get_site
from fedsim_app.train.model_io import load_site_models
from fedsim_app.train.quality import evaluate_dataset, worst


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--cohort", default="build/cohort")
    ap.add_argument("--sites", default=None, help="keys to evaluate (default: all in PATH)")
    ap.add_argument("--device", default="cpu",
                    help="torch device of the evaluation (default cpu: the recorded figures)")
    args = ap.parse_args()
    try:
        device = resolve_device(args.device)
    except FedSimError as exc:
        print(exc, file=sys.stderr)
        return 2
    default = asset_path("checkpoints", "default.pt", must_exist=False)
    path = default if args.checkpoint == "default" else Path(args.checkpoint)
    if not path.is_file():
        # `make bench` runs every benchmark: no trained model yet is a skip, not a failure
        print(f"skipped: {path}: no checkpoint (train one with `fedsim train` or "
              "`make assets`)")
        return 0 if args.checkpoint == "default" else 2
    models = load_site_models(path)
    keys = args.sites.split(",") if args.sites else list(models)
    results = []
    for key in keys:
        model = models[key].to(device)
        folder = Path(args.cohort) / get_site(key).dataset.folder
        t0 = time.perf_counter()
        try:
            q, n_test = evaluate_dataset(model, folder)
        except FedSimError as exc:
            print(f"site {key}: {exc}", file=sys.stderr)
            return 2
        results.append(q)
        print(f"site {key} ({n_test} test volumes, "
              f"{time.perf_counter() - t0:.0f} s): {q.line()}", flush=True)
    print(worst(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
