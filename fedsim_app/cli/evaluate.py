"""``fedsim evaluate``: the paper's segmentation experiments (Table 3) in one command."""

from __future__ import annotations

QUICK_CASES = 12  # cohort cases per site for --quick/smoke: budget + validation + test


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="does synthetic data help a 3D U-Net? the paper's Table 3 per site",
        description="Train the same MONAI 3D U-Net (Dice + cross-entropy, sliding-window "
        "inference, binary whole heart) for every row of the paper's Table 3 — Lower and "
        "Upper Bound, Fix-Mat, Ours-Pre/Full (the site's generator, trained here per fold "
        "unless --checkpoint gives one), Sim-FL (the federated generator), Direct-FL (the "
        "U-Net federated by FedAvg) — at the paper's label budgets (site A 4, B and C 6), "
        "k-fold, plus every row's Dice on OOD cases (a test patient re-rendered by another "
        "site's enhancer) and the realism (C2ST) of each row's synthetic data; write "
        "report.md and report.json under --out. --protocol table2: the paper's ablation "
        "on site A (synthetic data only). A row whose ingredient is missing is reported "
        "'not run'. Rerunning the same command resumes (each fold of each row is its own "
        "file; trained generators and exports are reused).",
    )
    p.add_argument("--protocol", default="table3",
                   help="table3 (default) or table2 (the ablation on site A)")
    p.add_argument("--quick", action="store_true",
                   help="one fold, 64³, short schedules (U-Net steps cut at a validation "
                   "plateau) and the cpu training preset, for a CPU (same as --preset quick)")
    p.add_argument("--preset", choices=("full", "quick", "smoke"), default="full",
                   help="amount of work (default full: 128³, 5 folds, the paper training "
                   "preset; meant for a GPU, see --device)")
    p.add_argument("--folds", type=int, help="folds (default 5; 1 with --quick)")
    p.add_argument("--data", nargs="+", metavar="SITE=DIR",
                   help="dataset folder per site (any layout FedSim reads); default: the "
                   "embedded cohort's sites A, B and C, generated under OUT/cohort")
    p.add_argument("--checkpoint", action="append", default=[], metavar="ROW:SITE=RUN",
                   help="trained model for ours-pre, ours-full or sim-fl at a site "
                   "(repeatable), e.g. ours-full:A=runs/a; 'default' = the shipped default "
                   "checkpoint as every site's Ours-Full. Rows without one train their "
                   "generator here (per fold)")
    p.add_argument("--no-ood", action="store_true",
                   help="skip the OOD test cases")
    p.add_argument("--large-budget", action="store_true",
                   help="the paper's larger label budgets (A 8, B and C 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, exports, U-Nets")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1; 0 leaves torch's setting)")
    p.add_argument("--size", type=int,
                   help="evaluation grid, voxels a side (default: the preset's, 128 full, "
                   "64 quick, 32 smoke); the cohort is written at it")
    p.add_argument("--device", default="auto",
                   help="where the U-Nets (every row, Direct-FL) train and predict: auto "
                   "(a CUDA GPU when torch sees one, else the CPU), cpu or cuda[:N]")
    p.add_argument("--out", required=True, metavar="DIR", help="evaluation folder")
    p.set_defaults(func=run)


def parse_data(items) -> dict:
    """``["A=DIR", ...]`` → ``{"A": Path}``, refusing unknown sites and missing folders."""
    from pathlib import Path

    from fedsim_app.errors import FedSimError
    from fedsim_app.sites import site_keys

    data = {}
    for item in items:
        site, sep, folder = item.partition("=")
        if not sep or not site or not folder:
            raise FedSimError(f"--data {item!r}: write SITE=DIR, e.g. A=cohort/Dataset501_A")
        if site not in site_keys():
            raise FedSimError(f"--data {item!r}: unknown site {site!r} (sites: "
                              f"{', '.join(site_keys())})")
        if not Path(folder).is_dir():
            raise FedSimError(f"--data {item!r}: {folder} is not a folder")
        data[site] = Path(folder)
    return data


def parse_checkpoints(items, sites=()) -> dict:
    """``["ours-full:A=RUN", "default", ...]`` → ``{("ours-full", "A"): Path}``;
    ``default`` stands for ``ours-full:S=default`` for each of ``sites``."""
    from pathlib import Path

    from fedsim_app.errors import FedSimError
    from fedsim_app.evaluate.protocols import CHECKPOINT_ROWS

    out = {}
    for item in items:
        if item == "default":
            from fedsim_app.export.sample import resolve_checkpoint

            if resolve_checkpoint("default") is None:
                raise FedSimError("--checkpoint default: no default checkpoint ships yet "
                                  "(assets/checkpoints/default.pt; `make assets` writes it) "
                                  "— omit --checkpoint to train the generators here")
            out.update({("ours-full", s): "default" for s in sites})
            continue
        head, sep, path = item.partition("=")
        row, colon, site = head.partition(":")
        if not sep or not colon or row not in CHECKPOINT_ROWS or not site or not path:
            raise FedSimError(f"--checkpoint {item!r}: write ROW:SITE=RUN with ROW one of "
                              f"{', '.join(CHECKPOINT_ROWS)}, e.g. ours-full:A=runs/a")
        if not Path(path).exists():
            raise FedSimError(f"--checkpoint {item!r}: {path} does not exist")
        out[(row, site)] = Path(path)
    return out


def run(args) -> int:
    import dataclasses
    import shlex
    import sys
    import time
    import warnings

    from fedsim_app.device import resolve_device
    from fedsim_app.errors import FedSimError
    from fedsim_app.evaluate.protocols import TITLES, preset, run_table3
    from fedsim_app.evaluate.report import write_report
    from fedsim_app.io.atomic import check_writable

    if args.protocol not in ("table3", "table2"):
        raise FedSimError(f"--protocol {args.protocol!r}: use table3 (the paper's Table 3) "
                          "or table2 (its ablation on site A)")
    if args.folds is not None and args.folds < 1:
        raise FedSimError(f"--folds {args.folds}: use 1 or more folds")
    name = "quick" if args.quick and args.preset == "full" else args.preset
    data = parse_data(args.data or [])
    checkpoints = parse_checkpoints(args.checkpoint, sites=tuple(data) or ("A", "B", "C"))
    # settings refused (size, device) before anything is written
    cfg = preset(name, folds=args.folds, seed=args.seed, device=args.device, size=args.size)
    out = check_writable(args.out)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if args.no_ood:
        cfg = dataclasses.replace(cfg, ood=False)
    notes = [f"command: fedsim {shlex.join(sys.argv[1:])}" if sys.argv[1:] else
             "command: fedsim evaluate (called in-process)",
             f"preset {name}; U-Net {cfg.unet.to_dict()} on "
             f"{resolve_device(cfg.unet.device)}; grid {cfg.size}³; "
             f"{cfg.n_synthetic} synthetic cases per synthetic row; seed {cfg.seed}",
             "generators (Ours-Pre/Full, Sim-FL) are trained per fold on the fold's training "
             f"cases, {cfg.generator.preset} training preset"]
    if not data:
        from fedsim_app.cohort.generate import generate_cohort

        cases = None if name == "full" else QUICK_CASES
        print(f"fedsim evaluate: writing the embedded cohort (sites A, B, C, "
              f"{cases or 'all'} cases per site, {cfg.size}³) under {out / 'cohort'}",
              file=sys.stderr)
        with warnings.catch_warnings():
            # the cohort's mmwhs codes are not nnU-Net's consecutive ones; MONAI reads them
            warnings.simplefilter("ignore", UserWarning)
            data = generate_cohort(out / "cohort", cases=cases, size=cfg.size,
                                   seed=args.seed).datasets
        notes.append(f"data: the embedded cohort, {cases or 'all'} cases per site at "
                     f"{cfg.size}³, seed {args.seed}")
    t0, c0 = time.perf_counter(), time.process_time()
    log = lambda line: print(f"fedsim evaluate: {line}", file=sys.stderr)  # noqa: E731
    meta = {"protocol": args.protocol, "preset": name, "config": cfg.to_dict(),
            "data": {k: str(v) for k, v in data.items()},
            "checkpoints": {f"{r}:{s}": str(p) for (r, s), p in checkpoints.items()}}
    if args.protocol == "table2":
        from fedsim_app.evaluate import table2

        if "A" not in data:
            raise FedSimError("--protocol table2 runs on site A: pass --data A=DIR")
        ck = checkpoints.get(("ours-full", "A"))
        results = table2.run_table2(data["A"], out, cfg, checkpoint=ck, log=log)
        titles, title = table2.TITLES, ("FedSim evaluation: Table 2 ablation, site A, "
                                        "synthetic data only (whole-heart Dice)")
        notes.append("every row: Fix-Mat material, site A's trained enhancer, "
                     f"{cfg.n_synthetic} volumes, U-Net trained on them only "
                     f"({cfg.unet.pretrain_steps} steps), selected on the real validation "
                     "cases, tested once on A's test cases")
    else:
        info: dict = {}
        results = run_table3(data, out, cfg, checkpoints=checkpoints, log=log, info=info)
        titles, title = TITLES, "FedSim evaluation: Table 3 (whole-heart Dice)"
        meta["ingredient_seconds"] = info["seconds"]
        meta["ingredient_cpu_seconds"] = info["cpu_seconds"]
        notes += info["notes"]
        notes.append("made once and reused (seconds wall / CPU): " + ", ".join(
            f"{k} {v:.0f} / {info['cpu_seconds'].get(k, 0.0):.0f}"
            for k, v in info["seconds"].items()))
        notes.append("C2ST: held-out accuracy of a small CNN telling the row's synthetic "
                     "slices from the fold's real ones (0.5 = indistinguishable); U-Net s: "
                     "the row's U-Net training, validation, test and OOD passes over its folds")
    notes.append(f"this command: {time.perf_counter() - t0:.0f} s wall, "
                 f"{time.process_time() - c0:.0f} s CPU (a resumed run counts only its own work)")
    j, m = write_report(out, results, title=title, meta=meta, notes=notes, seed=args.seed,
                        titles=titles)
    print(m.read_text())
    print(f"wrote {m} and {j}")
    return 0
