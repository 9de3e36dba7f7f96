"""Where a site enhancer's structure levels stand against what its inputs can tell.

Run: .venv/bin/python benchmarks/enhancer_levels.py [--checkpoint PATH|default]
         [--sites A,B,C] [--cohort build/cohort]

For each site, each heart structure, on the held-out test volumes (latents fitted as
``benchmarks/train_quality.py`` fits them), the mean over volumes of |mean HU of the
structure − the real image's|, for:

- ``enhancer``: the site enhancer's CT (the figure ``train_quality.py`` reports as the
  worst structure's ``enh_hu_err``);
- ``skip``: the enhancer's level path alone, without its network: the label-wise skip
  (``scale_c · coarse + shift_c``), or for an enhancer with ``levels="coarse"`` each
  structure at its coarse level plus the fitted shift (the background on the skip);
- ``coarse``: the model's coarse CT upsampled (a do-nothing enhancer);
- ``label_mean``: every structure painted with its mean over the labelled training
  volumes (each volume weighing the same), which ignores the coarse CT: what the labels
  alone tell. A per-patient level better than this must come from the coarse CT.

The last line per site is the worst structure of each.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from fedsim_app.assets import asset_path
from fedsim_app.models.enhance import structure_levels_of
from fedsim_app.models.enhancer import level_skip
from fedsim_app.models.generator import upsample_coarse
from fedsim_app.sites import get_site
from fedsim_app.train.data import load_site_data
from fedsim_app.train.model_io import load_site_models
from fedsim_app.train.quality import HU, coarse_and_enhanced, heldout_latents, structure_means

KINDS = ("enhancer", "skip", "coarse", "label_mean")


def label_means(images, labels) -> dict[int, float]:
    """Each structure's mean HU over volumes, each volume's own mean weighing the same."""
    per: dict[int, list[float]] = {}
    for v, lab in zip(images, labels, strict=True):
        for c, m in structure_means(v, lab).items():
            per.setdefault(c, []).append(m)
    return {c: sum(v) / len(v) for c, v in per.items()}


def site_errors(model, train, test) -> dict[str, dict[int, float]]:
    chain = model.chain()
    n = model.n_labelled
    z = heldout_latents(model, chain, test)
    coarse, enhanced = coarse_and_enhanced(chain, z, test.labels, 0)
    up = upsample_coarse(coarse, tuple(test.labels.shape[1:])) / HU
    onehot = F.one_hot(test.labels, 8).movedim(-1, 1).float()  # (B, 8, K, H, W)
    enh = chain.enhancer
    levels = structure_levels_of(coarse, test.labels) if enh.uses_levels else None
    skip = torch.stack([level_skip(u[:, None], oh.transpose(0, 1), enh.skip_scale,
                                   enh.skip_shift,
                                   None if levels is None else levels[b].expand(len(u), -1),
                                   getattr(enh, "level_shift", None))[:, 0]
                        for b, (u, oh) in enumerate(zip(up, onehot, strict=True))])
    prior = label_means(train.images[:n] * HU, train.labels[:n])
    outputs = {"enhancer": enhanced * HU, "skip": skip * HU, "coarse": up * HU}
    errs: dict[str, dict[int, list[float]]] = {k: {} for k in KINDS}
    for b, (real, lab) in enumerate(zip(test.images * HU, test.labels, strict=True)):
        want = structure_means(real, lab)
        for kind, vols in outputs.items():
            got = structure_means(vols[b], lab)
            for c in want:
                errs[kind].setdefault(c, []).append(abs(got[c] - want[c]))
        for c in want:
            errs["label_mean"].setdefault(c, []).append(abs(prior.get(c, 0.0) - want[c]))
    return {k: {c: sum(v) / len(v) for c, v in d.items()} for k, d in errs.items()}


def site_arguments() -> argparse.ArgumentParser:
    """``--checkpoint``, ``--cohort``, ``--sites``: the per-site benchmarks' arguments."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--cohort", default="build/cohort")
    ap.add_argument("--sites", default=None)
    return ap


def site_models(args) -> dict | None:
    """The site models of ``args.checkpoint`` (``default``: the shipped bundle), or None
    (said on stdout) when it or the cohort is missing: `make bench` runs every benchmark,
    and no model or cohort yet is a skip."""
    path = (asset_path("checkpoints", "default.pt", must_exist=False)
            if args.checkpoint == "default" else Path(args.checkpoint))
    if not path.is_file() or not Path(args.cohort).is_dir():
        print(f"skipped: needs {path} (make assets) and {args.cohort} (fedsim cohort)")
        return None
    models = load_site_models(path)
    return {k: models[k] for k in (args.sites.split(",") if args.sites else models)}


def site_data(cohort, key: str, model):
    """``(chain, train, test)``: the site model's chain, and the site's training (labelled
    volumes first) and test splits of the cohort at ``cohort`` on the model's grid."""
    folder = Path(cohort) / get_site(key).dataset.folder
    chain = model.chain()
    train = load_site_data(folder, chain.grid, n_labelled=model.n_labelled,
                           frame=model.config.frame)
    test = load_site_data(folder, chain.grid, n_labelled=0, subset="test",
                          frame=model.config.frame)
    return chain, train, test


def main() -> int:
    args = site_arguments().parse_args()
    models = site_models(args)
    if models is None:
        return 0
    for key, model in models.items():
        _, train, test = site_data(args.cohort, key, model)
        errs = site_errors(model, train, test)
        print(f"site {key}: structure " + " ".join(f"{k:>10}" for k in KINDS))
        for c in sorted(errs["enhancer"]):
            print(f"  {c:>16} " + " ".join(f"{errs[k][c]:10.0f}" for k in KINDS))
        print(f"  {'worst':>16} " + " ".join(f"{max(errs[k].values()):10.0f}" for k in KINDS),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
