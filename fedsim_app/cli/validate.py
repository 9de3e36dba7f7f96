"""``fedsim validate``: check a dataset or a NIfTI file, one line per problem."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="check a dataset (MM-WHS pairs, nnU-Net v2, MSD) or a NIfTI file",
        description="Check every file of a dataset or one NIfTI file and print one line per "
        "problem, naming the file; a folder of datasets (what `fedsim cohort --out` writes) "
        "is checked dataset by dataset. Exit 0 when clean, 1 when problems were found, 2 "
        "when the path is missing or holds no dataset.",
    )
    p.add_argument("path", help="dataset folder, a folder of datasets, a dataset.json, or a "
                   ".nii/.nii.gz file")
    p.add_argument("--label-codes", metavar="NAME|MAP.json", default=None,
                   help="label code set: internal, mmwhs, mmwhs-consecutive, imagechd, or a "
                   "mapping .json (default: from dataset.json, else detected)")
    p.add_argument("--max-voxels", type=int, default=None,
                   help="refuse volumes larger than this (default 1024^3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from fedsim_app.io.labels import get_code_set
    from fedsim_app.io.layouts import find_datasets
    from fedsim_app.io.nifti import DEFAULT_MAX_VOXELS
    from fedsim_app.io.validate import validate_path

    if args.label_codes is not None:
        get_code_set(args.label_codes)  # a wrong name or mapping is a usage error (exit 2)
    if args.max_voxels is not None and args.max_voxels < 1:
        from fedsim_app.errors import FedSimError

        raise FedSimError(f"--max-voxels {args.max_voxels}: give a positive voxel count")
    # a path that is missing or holds no dataset is input that cannot be used: exit 2,
    # like every other command; problems found inside datasets give 1
    roots = find_datasets(args.path)
    reports = [validate_path(root, args.label_codes,
                             max_voxels=args.max_voxels or DEFAULT_MAX_VOXELS)
               for root in roots]
    ok = all(r.ok for r in reports)
    if args.json:
        if len(reports) == 1:
            print(json.dumps(reports[0].to_dict(), indent=2))
        else:
            print(json.dumps({"root": str(args.path), "ok": ok,
                              "datasets": [r.to_dict() for r in reports]}, indent=2))
        return 0 if ok else 1
    for report in reports:
        for problem in report.problems:
            print(problem.line())
        for text in report.warnings:
            print(f"warning: {text}")
        summary = (f"{report.root}: {report.layout or 'unreadable'}, {report.n_cases} "
                   f"case(s), label codes {report.label_codes or 'unknown'}: ")
        summary += "OK" if report.ok else f"{len(report.problems)} problem(s)"
        print(summary)
    return 0 if ok else 1
