"""Virtual cohort: per-case generation time at 128³ for each fidelity, and the whole
default cohort (fast fidelity, 20 + 34 + 34 cases).

Run: .venv/bin/python benchmarks/cohort.py [--physics] [--whole]
(last line: key=value figures; physics at 128³ takes minutes per case on a CPU)
"""

import argparse
import tempfile
import time

from fedsim_app.cohort import generate_cohort, render_case, sample_case
from fedsim_app.sites import load_sites


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--physics", action="store_true", help="also time one physics case")
    ap.add_argument("--whole", action="store_true", help="also generate the whole cohort")
    args = ap.parse_args()
    sites = load_sites()
    figures = {}
    for key in "ABC":
        rec = sample_case(sites[key], 0, size=args.size)
        render_case(rec)  # warm caches (xraydb tables, FFT plans)
        t0 = time.perf_counter()
        render_case(rec, fidelity="fast")
        figures[f"fast_case_{key}_s"] = time.perf_counter() - t0
        print(f"site {key}: fast case at {args.size}^3 {figures[f'fast_case_{key}_s']:.2f} s")
    if args.physics:
        rec = sample_case(sites["A"], 0, size=args.size)
        t0 = time.perf_counter()
        render_case(rec, fidelity="physics")
        figures["physics_case_A_s"] = time.perf_counter() - t0
        print(f"site A: physics case at {args.size}^3 {figures['physics_case_A_s']:.1f} s")
    if args.whole:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            summary = generate_cohort(tmp, size=args.size)
            figures["whole_cohort_s"] = time.perf_counter() - t0
            figures["whole_cohort_cases"] = summary.written
        print(f"whole cohort: {summary.written} cases in {figures['whole_cohort_s']:.1f} s")
    print(" ".join(f"{k}={v:.3g}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
