"""Benchmark ``fedsim export``: volumes per minute, the time split per stage, and memory.

Two modes:

``--mode export`` (default) runs the export loop itself
(:func:`fedsim_app.export.dataset.export_dataset`) with timers around the chain's stages
(shape = G_shape + SSM decode + voxelized labels, material, coarse CT = μ + the site's
coarse scanner, enhancer), the novelty score and the writing (NIfTI, record), and samples
the resident memory after every case. The last line is
``volumes_per_min=… peak_rss_mb=…``.

``--mode sample`` times issue 9's "generated sample": z → labels, material, coarse CT and
every enhanced slice (:meth:`ExportModel.render`, nothing written), ``--n`` samples after
one warm-up; the last line is ``sample_s=… (median) …``.

    python benchmarks/export.py [--mode export|sample] [--n 100] [--size 128]
        [--checkpoint default|cpu|RUN] [--threads 0] [--precision float32|bfloat16]
        [--no-plan]

``--checkpoint cpu`` builds the ``cpu`` preset's networks untrained and saves them as a
checkpoint (same cost per case as trained ones). ``--threads 0`` keeps torch's default
(one thread per core). ``--no-plan`` runs the enhancer's own forward with 64 slices per
call, the path before the inference plan, for comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def untrained_checkpoint(folder: Path, preset_name: str) -> Path:
    from fedsim_app.train.checkpoint import save_checkpoint
    from fedsim_app.train.config import preset
    from fedsim_app.train.glo import build_nets

    cfg = preset(preset_name)
    nets = build_nets(cfg, n_labelled=4)
    return save_checkpoint(folder / "checkpoint.pt", {
        "config": cfg.to_dict(), "site": "A", "case_ids": [f"c{i}" for i in range(4)],
        "n_labelled": 4, "grid": None, "phase": 1, "step": 0,
        "models": {k: m.state_dict() for k, m in nets.modules().items()},
        "optimizers": {}, "prior": None, "rng": {}, "seconds": {}})


def timed(seconds: dict, key: str, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[key] += time.perf_counter() - t
    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--mode", choices=("export", "sample"), default="export")
    ap.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--no-plan", action="store_true",
                    help="the enhancer's own forward, 64 slices per call (the old path)")
    args = ap.parse_args()

    import torch

    from fedsim_app.export.sample import load_export_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="fedsim-export-bench-"))
    ckpt = args.checkpoint
    if ckpt in ("cpu", "paper", "smoke"):
        ckpt = untrained_checkpoint(tmp, ckpt)
    model = load_export_model(ckpt, "A", size=args.size)
    gen = model.generator
    gen.config = dataclasses.replace(gen.config, precision=args.precision)
    if args.no_plan:
        import fedsim_app.models.enhance_infer as infer

        infer.plan_enhancer = lambda *a, **k: None
        gen.config = dataclasses.replace(gen.config, slice_chunk=64)
    enh = gen.enhancer
    width = getattr(getattr(enh, "head", None), "out_channels", None)
    print(f"model: {model.source['model']}; enhancer "
          f"{'none' if enh is None else f'{type(enh).__name__} width {width}'}"
          f"{' (own forward, 64 slices per call)' if args.no_plan else ''}, "
          f"{args.precision}; {args.size}³, {args.n} cases, "
          f"{torch.get_num_threads()} torch thread(s)")

    seconds: dict = defaultdict(float)
    # the chain calls its stages through the instance: timers wrap them there
    gen.shape_params = timed(seconds, "shape", gen.shape_params)
    gen.labels = timed(seconds, "shape", gen.labels)
    gen.material = timed(seconds, "material", gen.material)
    gen.mu = timed(seconds, "coarse CT", gen.mu)
    gen.coarse_ct = timed(seconds, "coarse CT", gen.coarse_ct)
    gen.enhance = timed(seconds, "enhancer", gen.enhance)
    if args.mode == "sample":
        sample(model, args.n, seconds)
        return
    export(model, args.n, tmp, seconds)


def sample(model, n: int, seconds: dict) -> None:
    """Issue 9's sample: z → labels, material, coarse CT, every enhanced slice."""
    import numpy as np

    from fedsim_app.device import keep_freed_memory

    keep_freed_memory()
    model.render(model.draw(0, 0))  # warm-up: scanner matrix, allocator, weights in cache
    seconds.clear()
    totals, cpu = [], []
    for i in range(1, n + 1):
        t, c = time.perf_counter(), time.process_time()
        model.render(model.draw(i, 0))
        totals.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        print(f"  sample {i}: {totals[-1]:.2f} s ({cpu[-1]:.2f} s CPU)", file=sys.stderr,
              flush=True)
    total = sum(totals)
    for key in ("shape", "material", "coarse CT", "enhancer"):
        print(f"  {key:10s} {seconds[key] / n:7.3f} s/sample ({100 * seconds[key] / total:4.1f}%)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # CPU seconds of this process: on a busy host, what one thread would take idle
    print(f"sample_s={np.median(totals):.2f} min_s={min(totals):.2f} max_s={max(totals):.2f} "
          f"cpu_s={np.median(cpu):.2f} n={n} peak_rss_mb={peak:.0f}")


def export(model, n: int, tmp: Path, seconds: dict) -> None:
    import numpy as np

    from fedsim_app.export.dataset import export_dataset
    from fedsim_app.io.writer import DatasetWriter

    _ = model.training_reference  # the training hearts, computed once before the clock starts
    model.novelty = timed(seconds, "novelty", model.novelty)
    real_add = DatasetWriter.add_case
    DatasetWriter.add_case = timed(seconds, "writing", real_add)

    rss = []

    def progress(case_id, done, total, skipped):
        rss.append(rss_mb())
        if done % 10 == 0 or done == 1:
            print(f"  {done}/{total} cases, RSS {rss[-1]:.0f} MB", file=sys.stderr, flush=True)

    cpu0 = time.process_time()
    summary = export_dataset(model, n=n, out=tmp / "out", seed=0, progress=progress)
    cpu = time.process_time() - cpu0
    DatasetWriter.add_case = real_add
    total = summary.seconds
    print(f"{summary.written} cases in {total:.1f} s")
    for key in ("shape", "material", "coarse CT", "enhancer", "novelty", "writing"):
        print(f"  {key:10s} {seconds[key] / summary.written:7.3f} s/case "
              f"({100 * seconds[key] / total:4.1f}%)")
    other = total - sum(seconds.values())
    print(f"  {'other':10s} {other / summary.written:7.3f} s/case ({100 * other / total:4.1f}%)")
    r = np.array(rss)
    skip = min(10, len(r) // 2)
    slope = np.polyfit(np.arange(skip, len(r)), r[skip:], 1)[0] if len(r) - skip > 2 else 0.0
    print(f"RSS after case 1: {r[0]:.0f} MB, case {skip}: {r[skip - 1]:.0f} MB, "
          f"last: {r[-1]:.0f} MB; trend after case {skip}: {slope * 1000:+.1f} MB per 1000 cases")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"CPU time of this process: {cpu / summary.written:.2f} s per case "
          f"({60 * summary.written / cpu:.1f} volumes per CPU-minute)")
    print(f"volumes_per_min={summary.volumes_per_min:.2f} peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    main()
