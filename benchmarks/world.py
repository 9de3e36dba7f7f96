"""The world's realism table per site, and the cohort's writing rate at 128³ (fast).

Per site, over the first ``--cases`` cases at ``--size``³: HU mean ± std per tissue in
the rendered image (voxels of that class eroded by one voxel, so edges do not leak in)
beside the published range the world draws its means from; fractions of body voxels in
fat / soft tissue / bone (by class); the lung vessel volume fraction; the 99th HU
percentile of the body; noise standard deviation and NPS peak frequency (from two
renders of the same case with different noise seeds: (a − b)/√2 is noise alone). The
previous world (the same records without a world: the plain torso) gets its p99 too.
``--rate N`` also times writing N cases per site through ``generate_cohort`` (NIfTI
out), after a one-case warm-up, and prints cases per minute and CPU seconds per case.

Run: .venv/bin/python benchmarks/world.py [--cases 3] [--size 128] [--rate 10]
(``--cases 0 --rate 4``: the rate only; ``--replay N``: write N cases per site and
re-render each from its record file, bit for bit, labels only the seven structures)
(prints a Markdown table; last line: key=value figures)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np
from scipy import ndimage

from fedsim_app.anatomy.chest import WorldTissue as W
from fedsim_app.cohort import generate_cohort, render_case, sample_case
from fedsim_app.cohort.world import world_scene
from fedsim_app.ctsim.measure import noise_power_spectrum
from fedsim_app.sites import load_sites

#: tissues measured in the background classes: name → (classes, published range of the
#: mean at 120 kVp, HU; source), eroded by one voxel unless the class is a one-voxel shell
TABLE = {
    "fat": ((W.FAT,), (-130, -80), "oil phantom 2012; fat window"),
    "muscle": ((W.MUSCLE,), (35, 65), "Nutrition 2018"),
    "liver (arterial)": ((W.LIVER,), (60, 110), "unverified"),
    "lung": ((W.LUNG,), (-910, -750), "Clin Radiol 1991"),
    "trabecular bone": ((W.MARROW,), (150, 300), "Jang 2019"),
    "cortical bone (one-voxel shell)": ((W.CORTICAL_BONE,), (700, 3000), "unverified"),
}
SHELLS = (W.CORTICAL_BONE,)
#: heart label (internal code) → (row name, published range, source)
LABEL_ROWS = {
    2: ("myocardium (LV myocardium label)", (90, 130), "unverified"),
    1: ("arterial blood (LV blood pool label)", (250, 450), "Kawaguchi 2014"),
}
FAT = (W.FAT, W.BREAST)
BONE = (W.CORTICAL_BONE, W.MARROW)
NOT_BODY = (W.AIR, W.LUNG, W.GAS)


def site_figures(site, n_cases: int, size: int) -> dict:
    rows: dict[str, list[float]] = {k: [] for k in TABLE}
    rows.update({name: [] for name, _, _ in LABEL_ROWS.values()})
    frac = {"fat": [], "soft": [], "bone": []}
    vessel, p99, old_p99, noise_sd, nps_peak = [], [], [], [], []
    for index in range(n_cases):
        rec = sample_case(site, index, size=size)
        image, label = render_case(rec)
        hu, labels = image.array, label.array
        classes, trees, lung = world_scene(rec, labels)
        for name, (cls, _, _) in TABLE.items():
            m = np.isin(classes, cls) & (labels == 0)
            if cls[0] not in SHELLS:
                m = ndimage.binary_erosion(m)
            if m.sum() > 50:
                rows[name].append((float(hu[m].mean()), float(hu[m].std())))
        for code, (name, _, _) in LABEL_ROWS.items():
            m = ndimage.binary_erosion(labels == code)
            if m.sum() > 50:
                rows[name].append((float(hu[m].mean()), float(hu[m].std())))
        body = ~np.isin(classes, NOT_BODY)
        n_body = body.sum()
        frac["fat"].append(np.isin(classes, FAT).sum() / n_body)
        frac["bone"].append(np.isin(classes, BONE).sum() / n_body)
        frac["soft"].append(1 - frac["fat"][-1] - frac["bone"][-1])
        vessel.append(float(((trees.arteries >= 0.5) | (trees.veins >= 0.5))[lung].mean()))
        p99.append(float(np.percentile(hu[hu > -500], 99)))
        other = dataclasses.replace(rec, noise_seed=rec.noise_seed + 1)
        second, _ = render_case(other)
        noise = (hu - second.array) / np.sqrt(2.0)
        c = slice(size // 4, 3 * size // 4)
        f, nps, sd = noise_power_spectrum(noise[c, c, c], (rec.spacing_mm,) * 3)
        noise_sd.append(sd)
        nps_peak.append(float(f[np.argmax(nps)]))
        old = dataclasses.replace(rec, world={})
        old_hu = render_case(old)[0].array
        old_p99.append(float(np.percentile(old_hu[old_hu > -500], 99)))
    return dict(rows=rows, frac=frac, vessel=vessel, p99=p99, old_p99=old_p99,
                noise_sd=noise_sd, nps_peak=nps_peak)


def table(sites, args, figures: dict) -> None:
    """Print the per-site realism table (Markdown) and add its figures."""
    results = {k: site_figures(sites[k], args.cases, args.size) for k in "ABC"}
    print(f"\n{args.cases} cases per site at {args.size}^3, fast fidelity\n")
    print("| tissue | published mean (HU) | source | "
          + " | ".join(f"site {k}" for k in "ABC") + " |")
    print("|---|---|---|" + "---|" * 3)
    published = {k: v[1:] for k, v in TABLE.items()}
    published.update({name: (rng, src) for name, rng, src in LABEL_ROWS.values()})
    for name, ((lo, hi), source) in published.items():
        cells = []
        for k in "ABC":
            vals = results[k]["rows"][name]
            if vals:
                mean = np.mean([v[0] for v in vals])
                sd = np.mean([v[1] for v in vals])
                cells.append(f"{mean:.0f} ± {sd:.0f}")
            else:
                cells.append("–")
        print(f"| {name} | {lo} to {hi} | {source} | " + " | ".join(cells) + " |")
    for label, key, fmt in (("body fraction fat / soft / bone", None, None),
                            ("lung vessel volume fraction", "vessel", "{:.3f}"),
                            ("99th HU percentile of the body", "p99", "{:.0f}"),
                            ("same, previous world", "old_p99", "{:.0f}"),
                            ("noise std (HU)", "noise_sd", "{:.1f}"),
                            ("NPS peak (cycles/mm)", "nps_peak", "{:.2f}")):
        cells = []
        for k in "ABC":
            r = results[k]
            if key is None:
                cells.append(" / ".join(f"{np.mean(r['frac'][t]):.2f}"
                                        for t in ("fat", "soft", "bone")))
            else:
                cells.append(fmt.format(np.mean(r[key])))
                figures[f"{key}_{k}"] = float(np.mean(r[key]))
        print(f"| {label} | | | " + " | ".join(cells) + " |")


def replay(n_cases: int, size: int, figures: dict) -> None:
    """Write ``n_cases`` per site, re-render each from its record file, compare the images."""
    import json
    from pathlib import Path

    from fedsim_app.cohort import CaseRecord
    from fedsim_app.io import read_nifti
    from fedsim_app.io.labels_core import STRUCTURES

    same = labels_ok = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(tmp, cases=n_cases, size=size)
        for path in sorted(Path(tmp).glob("*/fedsim/*.json")):
            rec = CaseRecord.from_dict(json.loads(path.read_text())["record"])
            image, label = render_case(rec)
            written = next(path.parent.parent.rglob(f"{rec.case_id}_0000.nii.gz"))
            same += bool(np.array_equal(read_nifti(written).array, image.array))
            labels_ok += set(np.unique(label.array)) <= set(range(len(STRUCTURES) + 1))
            total += 1
    figures.update(replayed=same, labels_seven=labels_ok, replay_cases=total)
    print(f"\nreplay: {same} of {total} written cases re-render bit for bit from their "
          f"record files; {labels_ok} of {total} hold only the seven structures")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rate", type=int, default=0, help="time writing N cases per site")
    ap.add_argument("--replay", type=int, default=0,
                    help="write N cases per site and re-render them from their records")
    args = ap.parse_args()
    sites = load_sites()
    figures = {}
    if args.cases > 0:
        table(sites, args, figures)
    if args.replay:
        replay(args.replay, args.size, figures)
    if args.rate:
        with tempfile.TemporaryDirectory() as warm:  # imports, caches, first-call costs
            generate_cohort(warm, cases=1, sites="A", size=args.size)
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), time.process_time()
            summary = generate_cohort(tmp, cases=args.rate, size=args.size)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        figures["cases_per_min"] = 60.0 * summary.written / seconds
        # CPU seconds of this process (all its threads) per case: what a case costs the
        # machine, read apart from how busy other processes keep the cores
        figures["cpu_s_per_case"] = cpu / summary.written
        print(f"\ncohort: {summary.written} cases at {args.size}^3 in {seconds:.1f} s "
              f"= {figures['cases_per_min']:.1f} cases/min; "
              f"{figures['cpu_s_per_case']:.2f} CPU s per case")
    print(" ".join(f"{k}={v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
