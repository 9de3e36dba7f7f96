"""``fedsim export``: write a labelled synthetic dataset from a site's model."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a labelled synthetic CT dataset (nnU-Net v2 / MONAI) from a site's model",
        description="Draw cases from a trained site model (latents from the normal fitted to "
        "its training latents) or, without a checkpoint, from the atlas SSM with Fix-Mat "
        "and no enhancer; render each through the model and write an nnU-Net v2 raw dataset "
        "(dataset.json with MSD keys) with a provenance record and a novelty score per "
        "case. Rerunning the same command resumes; Ctrl-C stops after the last finished "
        "case (exit 130).",
    )
    p.add_argument("--checkpoint", default="default", metavar="RUN|default",
                   help="training run folder or checkpoint file; 'default' is the shipped "
                   "checkpoint, or the atlas SSM + Fix-Mat model while none ships; 'atlas' "
                   "forces that model")
    p.add_argument("--site", default="A", help="site key (default A)")
    p.add_argument("--n", type=int, default=200, help="cases to export (default 200)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="dataset folder Dataset<id>_<name>, or a folder to create one in")
    p.add_argument("--seed", type=int, default=0, help="seed of the export (default 0)")
    p.add_argument("--size", type=int, default=128,
                   help="voxels per axis of every volume, a multiple of 16 (default 128)")
    p.add_argument("--label-codes", default="internal", metavar="CODES",
                   help="internal | mmwhs | mmwhs-consecutive | mapping.json (default "
                   "internal; nnU-Net needs consecutive codes)")
    p.add_argument("--meshes", action="store_true", help="also write PLY meshes per case")
    p.add_argument("--latents", metavar="FILE",
                   help=".npy or text file of latents, one case per row (32 values; 21 shape "
                   "parameters for the atlas model)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: torch's setting, one per core; the "
                   "enhancer runs them as workers over groups of slices)")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="the enhancer's convolutions (default float32; bfloat16 is faster "
                   "on CPUs with bf16 instructions, within a few HU, and said in each "
                   "record)")
    p.set_defaults(func=run)


def run(args) -> int:
    import signal
    import sys
    import warnings

    from tqdm import tqdm

    from fedsim_app.errors import FedSimError
    from fedsim_app.export.dataset import dataset_folder, export_dataset, read_latents
    from fedsim_app.export.sample import load_export_model
    from fedsim_app.io.atomic import check_writable
    from fedsim_app.io.labels import get_code_set

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    if args.n < 1:
        raise FedSimError(f"--n {args.n}: export at least one case")
    codes = get_code_set(args.label_codes)  # names the file and the problem
    model = load_export_model(args.checkpoint, args.site, size=args.size,
                              precision=args.precision)
    if not model.trained:
        print(f"fedsim export: note: {model.source['model']}; records say so",
              file=sys.stderr)
    latents = None
    if args.latents:
        latents = read_latents(args.latents, 32 if model.trained else 21)
    stop = {"requested": False}

    def request_stop(signum, frame):
        # finish the case being written, then stop; a second Ctrl-C stops at once (the
        # atomic writes leave no half file, and the case is redone on resume)
        stop["requested"] = True
        signal.signal(signal.SIGINT, previous)

    check_writable(dataset_folder(args.out, model.generator.site)[0])  # before any bar
    bar = tqdm(total=args.n, desc=f"export site {model.generator.site.key}", unit="case")

    def progress(case_id, done, total, skipped):
        bar.set_postfix_str(case_id, refresh=False)
        bar.update(1)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # non-consecutive codes: noted below
            summary = export_dataset(model, n=args.n, out=args.out, seed=args.seed,
                                     label_codes=codes, meshes=args.meshes, latents=latents,
                                     progress=progress, should_stop=lambda: stop["requested"])
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    names = sorted(codes.names().values())
    if names != list(range(len(names))):
        print(f"fedsim export: note: label codes {codes.name!r} are not consecutive: MONAI "
              "reads them, nnU-Net does not (use --label-codes mmwhs-consecutive)",
              file=sys.stderr)
    for line in summary.lines():
        print(line)
    if summary.interrupted:
        print("fedsim export: interrupted after the last finished case; run the same command "
              "to resume", file=sys.stderr)
        return 130
    return 0
