"""``fedsim ssm``: build, inspect, sample and fit the statistical shape model."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("ssm", help="statistical shape model: build, info, sample, fit")
    ssm_sub = p.add_subparsers(dest="ssm_command", metavar="ACTION")
    p.set_defaults(func=_help(p))

    b = ssm_sub.add_parser("build", help="build the atlas SSM from the anatomy population")
    b.add_argument("--out", default=None, help="output .npz (default: the shipped asset)")
    b.add_argument("--population", default="atlas", help="anatomy population (default atlas)")
    b.add_argument("--seed", type=int, default=0, help="seed for non-atlas populations")
    b.add_argument("--from-labels", metavar="DIR", default=None,
                   help="build from the label maps of this dataset (any layout FedSim reads, "
                   "or a folder of .nii.gz label maps): each is registered to the atlas "
                   "template; failing cases are named and skipped")
    b.add_argument("--label-codes", metavar="NAME|MAP.json", default=None,
                   help="with --from-labels: code set (default: dataset.json, else detected)")
    b.add_argument("--with-atlas", action="store_true",
                   help="with --from-labels: add the 20 procedural atlas hearts")
    b.add_argument("--report", metavar="JSON", default=None,
                   help="with --from-labels: write the per-case registration report here "
                   "(default: next to --out, <out>.report.json)")
    b.set_defaults(func=run_build)

    i = ssm_sub.add_parser("info", help="explained variance per mode")
    i.add_argument("--ssm", default=None, help="model .npz (default: the shipped atlas SSM)")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=run_info)

    s = ssm_sub.add_parser("sample", help="random hearts: meshes, label volumes, parameters")
    s.add_argument("--n", type=int, required=True, help="number of hearts")
    s.add_argument("--out", default=None, help="output folder (required unless --report)")
    s.add_argument("--population", default="atlas", help="SSM of this anatomy population")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=128,
                   help="label grid voxels per axis, 16 or more (default 128)")
    s.add_argument("--ssm", default=None, help="model .npz (overrides --population)")
    s.add_argument("--report", action="store_true",
                   help="print the hearts' volumes and vessel sizes against the published CT "
                   "norms (writes nothing unless --out is given)")
    s.set_defaults(func=run_sample)

    f = ssm_sub.add_parser("fit", help="fit the 21 shape parameters to a label map")
    f.add_argument("labels", help="label map (.nii or .nii.gz)")
    f.add_argument("--label-codes", default=None,
                   help="code set name or mapping .json (default: detected)")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.add_argument("--out", default=None, help="write fitted meshes and label map here")
    f.add_argument("--ssm", default=None, help="model .npz (default: the shipped atlas SSM)")
    f.add_argument("--steps", type=int, default=None, help="optimisation steps (default 80)")
    f.add_argument("--coarse-size", type=int, default=None,
                   help="voxels per axis of the optimisation grid (default 48)")
    f.add_argument("--refine", action="store_true",
                   help="after the 21-parameter fit, register every structure onto the label "
                   "boundaries (meshes keep the template's vertices: in correspondence)")
    f.add_argument("--out-codes", choices=("input", "internal"), default="input",
                   help="codes of the written fitted_labels.nii.gz: the input's code set "
                   "(default, so it overlays the input) or FedSim's internal 0..7")
    f.set_defaults(func=run_fit)


def _help(parser):
    def run(args) -> int:
        parser.print_help()
        return 2

    return run


def _model(path):
    from fedsim_app.shape import ShapeModel, load_atlas_ssm

    return ShapeModel.load(path) if path else load_atlas_ssm()


def run_build(args) -> int:
    from pathlib import Path

    from fedsim_app.shape.atlas import ATLAS_FILE, build_population_ssm

    if args.out:
        out = Path(args.out)
    else:
        from fedsim_app.assets import assets_dir

        out = assets_dir().joinpath(*ATLAS_FILE)
    if args.from_labels:
        return _build_from_labels(args, out)
    model = build_population_ssm(args.population, seed=args.seed)
    model.save(out)
    print(f"wrote {out} ({model.n_vertices} vertices, {len(model.topology.faces)} faces)")
    _print_variance(model)
    return 0


def _build_from_labels(args, out) -> int:
    from fedsim_app.shape.export import write_json
    from fedsim_app.shape.from_labels import build_from_labels

    if args.out is None:
        from fedsim_app.errors import FedSimError

        raise FedSimError("--from-labels needs --out PATH.npz (the shipped atlas stays "
                          "the procedural one)")
    model, reports = build_from_labels(args.from_labels, args.label_codes,
                                       with_atlas=args.with_atlas,
                                       log=lambda text: print(text, file=sys.stderr))
    model.save(out)
    report = args.report or str(out.with_suffix("")) + ".report.json"
    kept = sum(r.ok for r in reports)
    write_json(report, {"from_labels": str(args.from_labels), "with_atlas": args.with_atlas,
                        "registered": kept, "skipped": len(reports) - kept,
                        "cases": [r.to_dict() for r in reports]})
    print(f"wrote {out} from {kept} of {len(reports)} label maps"
          + (" and the 20 atlas hearts" if args.with_atlas else "") + f"; report {report}")
    for r in reports:
        if not r.ok:
            print(f"  skipped {r.path}: {r.reason}")
    _print_variance(model)
    return 0


def _print_variance(model) -> None:
    from fedsim_app.shape.params import N_MODES

    ratio = model.explained_variance_ratio()
    cum = 0.0
    print("mode  eigenvalue (mm²)  explained  cumulative")
    # numbered from 1, as the Explorer's sliders are (Mode 1 … Mode 14)
    for k in range(min(N_MODES, len(ratio))):
        cum += ratio[k]
        print(f"{k + 1:4d}  {model.eigenvalues[k]:16.1f}  {100 * ratio[k]:8.2f}%  "
              f"{100 * cum:9.2f}%")


def run_info(args) -> int:
    from fedsim_app.shape.params import N_MODES, N_PARAMS, N_RIGID

    model = _model(args.ssm)
    ratio = model.explained_variance_ratio()
    if args.json:
        print(json.dumps({
            "n_vertices": model.n_vertices,
            "n_faces": int(len(model.topology.faces)),
            "structures": list(model.topology.names),
            "center_mm": [float(c) for c in model.center_mm],
            "eigenvalues": [float(e) for e in model.eigenvalues],
            "explained_variance_ratio": [float(r) for r in ratio],
            "n_shape_modes": N_MODES,
            "n_pose_params": N_RIGID,
            "ranges": model.ranges.to_dict(),
        }))
        return 0
    spanned = int((model.eigenvalues > 0).sum())
    print(f"SSM: {model.n_vertices} vertices, {len(model.topology.faces)} faces, "
          f"{len(model.topology.names)} structures")
    print(f"{N_PARAMS} parameters: {N_MODES} shape modes (Mode 1–{N_MODES}; the training "
          f"shapes span {spanned}) and {N_RIGID} pose parameters (rotation x/y/z, "
          "translation x/y/z, log-scale)")
    _print_variance(model)
    print(f"{N_MODES} modes explain {100 * ratio[:N_MODES].sum():.2f}% of the training "
          "variance")
    return 0


def run_sample(args) -> int:
    from pathlib import Path

    from fedsim_app.errors import FedSimError
    from fedsim_app.io.records import Record, write_record
    from fedsim_app.shape import ShapeSampler, default_grid, population_ssm, voxelize
    from fedsim_app.shape.export import write_labels, write_meshes
    from fedsim_app.shape.grid_size import check_label_size

    if args.n < 1:
        raise FedSimError("--n must be at least 1")
    check_label_size(args.size)
    model = _model(args.ssm) if args.ssm else population_ssm(args.population)
    if args.report:
        _norms_report(args, model)
        if args.out is None:
            return 0
    if args.out is None:
        raise FedSimError("--out is required (or --report to print the norms table only)")
    out = Path(args.out)
    grid = default_grid(model, size=args.size)
    sampler = ShapeSampler()
    params = sampler.sample(args.seed, args.n)
    for k, p in enumerate(params):
        case = out / f"heart_{k:03d}"
        verts = model.decode(p)
        write_meshes(model.topology, verts, case / "meshes", formats=("ply",))
        write_labels(voxelize(model, verts, grid), grid, case / "labels.nii.gz")
        write_record(case / "params.json", Record("shape-sample", {
            "params": [float(x) for x in p],
            "population": args.population if not args.ssm else None,
            "ssm": str(args.ssm) if args.ssm else None,
            "seed": args.seed,
            "index": k,
            "label_codes": "internal",
            "sampler": sampler.to_dict(),
            "grid": {"shape": list(grid.shape), "spacing_mm": list(grid.spacing_mm),
                     "origin_mm": list(grid.origin_mm)},
        }))
        print(f"wrote {case}", file=sys.stderr)
    print(f"{args.n} hearts in {out}")
    return 0


def _norms_report(args, model) -> None:
    """The sampled hearts (and, for an anatomy population, the procedural hearts the SSM
    was built from, drawn afresh) measured against the CT norms."""
    from fedsim_app.shape import ShapeSampler
    from fedsim_app.shape.norms import measure, out_of_range, report_table, summarise

    params = ShapeSampler().sample(args.seed, args.n)
    columns = {"SSM samples": summarise([measure(model.topology, model.decode(p))
                                         for p in params])}
    if not args.ssm and args.population != "atlas":
        from fedsim_app import anatomy

        rng = __import__("numpy").random.default_rng(args.seed)
        hearts = [anatomy.build_heart(anatomy.sample_heart_params(args.population, rng))
                  for _ in range(args.n)]
        if model.n_vertices == hearts[0].stacked_vertices().shape[0]:
            columns["procedural hearts"] = summarise(
                [measure(model.topology, h.stacked_vertices()) for h in hearts])
    source = args.ssm or f"population {args.population}"
    print(f"{args.n} hearts, {source}: median [5th-95th percentile] vs CT norms "
          "(shared/reference/heart-norms.md)")
    print(report_table(columns))
    for name, stats in columns.items():
        bad = out_of_range(stats)
        print(f"{name}: " + ("every median within its norm interval" if not bad
                             else "outside the norms: " + ", ".join(bad)))


def run_fit(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from fedsim_app.errors import FedSimError
    from fedsim_app.io.dataset import read_label_and_codes
    from fedsim_app.shape import FitConfig, fit_labels
    from fedsim_app.shape.export import write_json, write_labels, write_meshes

    if args.steps is not None and args.steps < 0:
        raise FedSimError("--steps must be 0 or more")
    if args.coarse_size is not None and args.coarse_size < 8:
        raise FedSimError("--coarse-size must be at least 8")
    model = _model(args.ssm)
    vol, codes = read_label_and_codes(args.labels, args.label_codes)
    cfg = FitConfig()
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.coarse_size is not None:
        cfg = replace(cfg, coarse_size=args.coarse_size)
    reg = None
    if args.refine:
        from fedsim_app.shape.register import RegisterConfig, register_labels, scaled_fit

        reg = register_labels(model, vol.array, vol.grid, RegisterConfig(fit=cfg),
                              fit=scaled_fit(model, vol.array, vol.grid, cfg))
        result = reg.fit
    else:
        result = fit_labels(model, vol.array, vol.grid, cfg)
    summary = result.to_dict()
    if reg is not None:
        summary["registration"] = reg.to_dict()
    out_codes = codes if args.out_codes == "input" else None
    summary["label_codes"] = codes.name
    summary["fitted_label_codes"] = codes.name if out_codes else "internal"
    if args.out:
        out = Path(args.out)
        final = result if reg is None else reg  # the refined meshes when --refine
        write_meshes(model.topology, final.vertices, out / "meshes")
        write_labels(final.labels, vol.grid, out / "fitted_labels.nii.gz", like=vol,
                     codes=out_codes)
        write_json(out / "fit.json", summary)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"fitted {args.labels} in {result.seconds:.1f} s")
    print(f"  binary heart IoU {result.binary_iou:.3f}")
    for name, d in result.dice.items():
        print(f"  Dice {name:<18} {d:.3f}")
    print(f"  {summary['params_at_limit']} of 21 parameters at their ±1 limit")
    if reg is not None:
        print(f"refined: binary heart IoU {reg.binary_iou:.3f}, mean Dice {reg.mean_dice:.3f}"
              f" ({reg.seconds:.1f} s)" + (f" — FAILED: {reg.failure}" if reg.failure else ""))
        for name, d in reg.dice.items():
            print(f"  Dice {name:<18} {d:.3f}")
    if args.out:
        print(f"  wrote meshes and fitted_labels.nii.gz to {args.out}")
    return 0
