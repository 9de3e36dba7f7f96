"""``fedsim train``: learn one site's model (GLO, four phases) into a run folder."""

from __future__ import annotations

from fedsim_app.cli._quality import add_quality_option, effort_for, report_quality


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train one site's model (shape, material, enhancer) from a dataset",
        description="Learn G_shape, G_material and the site's enhancer from a labelled (and "
        "partly unlabelled) dataset: phase 1 shape and material, phase 2 the enhancer, "
        "phase 3 semi-supervised, phase 4 the enhancer again on the final generators "
        "(phase4_epochs: 40 in the cpu preset, 0 = off in paper). The run folder gets the "
        "config, metrics (CSV, JSONL), loss curves, a sample grid and checkpoint.pt; at "
        "the end the model is scored on the dataset's test split (quality.json). Ctrl-C "
        "saves a checkpoint and exits 130; --resume continues from it.",
    )
    p.add_argument("--site",
                   help="site key: its scanner renders the model, and without --data its "
                   "cohort dataset is read (default A; with --resume, the run's)")
    p.add_argument("--data", metavar="DIR",
                   help="dataset folder (nnU-Net v2, MSD or image/label pairs); default: the "
                   "site's dataset under --cohort")
    p.add_argument("--cohort", metavar="ROOT",
                   help="cohort folder written by `fedsim cohort --out ROOT` (default ./cohort;"
                   " with --resume, the run's dataset)")
    p.add_argument("--labels", type=int,
                   help="labelled training volumes (the paper's budgets: site A 4 or 8, B/C 6 "
                   "or 12; default the smaller; with --resume, the run's); the rest of the "
                   "training split is unlabelled")
    p.add_argument("--preset", choices=("paper", "cpu", "smoke"),
                   help="resolutions and amount of work (default cpu)")
    p.add_argument("--config", metavar="TOML",
                   help="settings overriding a preset: the file's own `preset = ...`, "
                   "else --preset's")
    p.add_argument("--shape-grad", choices=("soft", "fd"),
                   help="shape gradient: soft occupancy (default) or the paper's finite "
                   "differences")
    p.add_argument("--shape-model", choices=("atlas", "labels", "labels+atlas"),
                   help="the SSM G_shape decodes in: the shipped atlas SSM, one built from "
                   "the labelled training volumes (registered to the atlas template), or "
                   "those with the atlas's population (the cpu preset's default)")
    p.add_argument("--seed", type=int, help="seed of the run (default 0)")
    p.add_argument("--vgg-weights", metavar="PT",
                   help="local VGG-19 state dict for the perceptual loss (nothing is downloaded)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the steps are small, and on a shared "
                   "machine more threads were slower; 0 leaves torch's setting)")
    p.add_argument("--device", metavar="DEV",
                   default="auto",
                   help="torch device to train on: auto (default: CUDA when torch sees a GPU, "
                   "else the CPU; FEDSIM_DEVICE overrides), cpu, cuda or cuda:N. A "
                   "checkpoint resumes on any device")
    add_quality_option(p, "the trained model")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN/checkpoint.pt (its settings, dataset, site and "
                   "label budget are used)")
    p.set_defaults(func=run)


def _config(args):
    from fedsim_app.train.config import load_config, preset

    overrides = {k: v for k, v in (("shape_grad", args.shape_grad),
                                   ("shape_model", args.shape_model), ("seed", args.seed),
                                   ("vgg_weights", args.vgg_weights)) if v is not None}
    name = args.preset or "cpu"
    if args.config:  # the file's own `preset = ...` is its base; without one, --preset's
        return load_config(args.config, name).replace(**overrides)
    return preset(name, **overrides)


def data_folder(args, site):
    """The dataset folder of ``--data``, or the site's dataset in the cohort."""
    from pathlib import Path

    from fedsim_app.errors import FedSimError

    if args.data:
        return Path(args.data)
    cohort = args.cohort or "cohort"
    path = Path(cohort) / site.dataset.folder
    if not path.is_dir():
        raise FedSimError(f"{path}: no dataset for site {site.key} — write the cohort first "
                          f"(`fedsim cohort --out {cohort}`) or pass --data DIR")
    return path


def _resume_defaults(args) -> None:
    """Fill --site/--data/--labels the user left out from the run's record."""
    from fedsim_app.train.session import read_run_record

    record = read_run_record(args.out)
    if args.site is None:
        args.site = record["site"]
    if args.data is None and args.cohort is None:
        args.data = record["data"]
    if args.labels is None:
        args.labels = record["labels"]


def run(args) -> int:
    import signal
    import sys
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from fedsim_app.device import resolve_device
    from fedsim_app.sites import get_site
    from fedsim_app.train.data import LABEL_BUDGETS
    from fedsim_app.train.glo import Interrupted
    from fedsim_app.train.session import make_trainer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.resume:
        _resume_defaults(args)
    site = get_site(args.site or "A")
    cfg = _config(args)
    device = resolve_device(args.device)
    n_labelled = args.labels or LABEL_BUDGETS.get(site.key, (4,))[0]
    bars: dict[int, tqdm] = {}

    def progress(phase, step, total, losses):
        bar = bars.get(phase)
        if bar is None:
            for old in bars.values():
                old.close()
            bar = bars[phase] = tqdm(total=total, initial=step - 1, desc=f"phase {phase}",
                                     unit="step")
        bar.set_postfix({k: f"{v:.3g}" for k, v in list(losses.items())[:4]}, refresh=False)
        bar.update(1)

    folder = data_folder(args, site)
    trainer = make_trainer(folder, site, n_labelled, cfg, args.out,
                           resume=args.resume, progress=progress, device=device)

    def request_stop(signum, frame):
        # finish the step, write the checkpoint, then stop; a second Ctrl-C stops at once
        trainer.stop_requested = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        trainer.run()
    except Interrupted as exc:
        print(f"\nfedsim train: interrupted; checkpoint {exc.path} (continue with --resume)",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
        for bar in bars.values():
            bar.close()
    secs = ", ".join(f"phase {k} {v:.0f} s" for k, v in trainer.seconds.items())
    print(f"trained site {site.key} ({trainer.data.n_labelled} labelled, "
          f"{trainer.data.n_unlabelled} unlabelled; {secs} on {trainer.device}): {args.out}",
          flush=True)
    effort = effort_for(args.quality, trainer.cfg.preset)
    if effort != "off":
        from fedsim_app.train.model_io import load_site_models

        model = load_site_models(Path(args.out) / "checkpoint.pt")[site.key]
        report_quality({site.key: model}, {site.key: folder}, args.out, effort,
                       device=trainer.device, train={site.key: trainer.data})
    return 0
