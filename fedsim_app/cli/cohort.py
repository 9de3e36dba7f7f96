"""``fedsim cohort``: write the virtual three-site cohort, or a preview PNG of one."""

from __future__ import annotations

import sys
import warnings


def register(sub) -> None:
    p = sub.add_parser(
        "cohort",
        help="generate the virtual three-site cohort (nnU-Net datasets with records)",
        description="Generate one labelled CT dataset per site (nnU-Net v2 layout, MM-WHS "
        "label codes, a parameter record per case, the train/val/test split). Interrupted "
        "runs resume without redoing finished cases.",
    )
    p.add_argument("--out", help="output folder (one dataset folder per site)")
    p.add_argument("--sites", default="A,B,C", help="site keys, comma separated (default A,B,C)")
    p.add_argument("--cases", type=int, help="cases per site (default: the full split, 20/34/34)")
    p.add_argument("--size", type=int, default=128,
                   help="voxels per side, 16 or more (default 128)")
    p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    p.add_argument("--fidelity", choices=("fast", "physics"), default="fast",
                   help="scanner model: image-domain 'fast' or diffct 'physics'")
    p.add_argument("--label-codes", default="mmwhs",
                   help="codes of the written labels (default mmwhs; mmwhs-consecutive for "
                   "nnU-Net training)")
    p.add_argument("--preview", metavar="DIR",
                   help="write DIR/preview.png (one mid-axial slice per site) and exit; with "
                   "--out, generate first")
    p.set_defaults(func=run)


def run(args) -> int:
    from fedsim_app.errors import FedSimError

    if not args.out and not args.preview:
        raise FedSimError("say where: --out DIR to generate, --preview DIR to draw a preview")
    if args.out:
        from fedsim_app.cohort.generate import generate_cohort

        bar = _LazyBar()
        try:
            with warnings.catch_warnings():
                # the writer warns that MM-WHS codes are not consecutive; say it once, in
                # words that name the option to change it (printed below)
                warnings.filterwarnings("ignore", message="label codes .* not consecutive")
                summary = generate_cohort(args.out, sites=args.sites, cases=args.cases,
                                          size=args.size, seed=args.seed,
                                          fidelity=args.fidelity,
                                          label_codes=args.label_codes, progress=bar.update)
        finally:
            bar.close()
        print(f"wrote {summary.written} case(s), kept {summary.skipped} finished earlier, "
              f"in {summary.seconds:.1f} s")
        for key, path in summary.datasets.items():
            print(f"  site {key}: {path}")
        _note_codes(args.label_codes)
    if args.preview:
        from fedsim_app.cohort.preview import write_preview

        source = args.out or args.preview
        png = write_preview(source, None if args.out is None else f"{args.preview}/preview.png")
        print(f"preview: {png}")
    return 0


class _LazyBar:
    """A tqdm bar opened at the first finished case, when its total is known; so an
    error before any case (bad option, unwritable folder) prints no empty bar."""

    def __init__(self):
        self.bar = None

    def update(self, case_id: str, done: int, total: int, skipped: bool) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="case", desc="cohort")
        self.bar.set_postfix_str(f"{case_id}{' (done earlier)' if skipped else ''}")
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _note_codes(label_codes: str) -> None:
    from fedsim_app.io.labels import get_code_set

    codes = get_code_set(label_codes)
    values = sorted(codes.names().values())
    if values != list(range(len(values))):
        print(f"note: labels are written in {codes.name} codes, as the datasets FedSim mirrors "
              "are; nnU-Net needs consecutive codes, so pass --label-codes "
              "mmwhs-consecutive for nnU-Net training (MONAI reads either)", file=sys.stderr)
