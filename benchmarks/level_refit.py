"""How the latent fit's structure-mean weight sets the enhancer's structure levels.

Run: .venv/bin/python benchmarks/level_refit.py [--checkpoint PATH|default]
         [--sites A,B,C] [--cohort build/cohort] [--smean 1,10] [--steps 300]

An enhancer with ``levels="coarse"`` puts each heart structure at the model's coarse CT's
level of it plus a per-structure shift. The coarse CT of a held-out volume comes from a
latent fitted to the volume reduced to the coarse grid (coarse MSE plus ``refit_smean`` ×
the structure-mean term: ``fedsim_app.train.quality.refit_latents``). For each weight in
``--smean`` (0: the training's own ratio) this refits the labelled volumes and the test
volumes so, fits the shift on the labelled ones (as training's end calibration does) and
prints, per heart structure, the mean over test volumes of |level + shift − the real
structure mean| in HU (the level path of ``benchmarks/enhancer_levels.py``, whose mean is
the enhancer's); then, as ``real``, the same from the real volume's own coarse levels
(what a perfect fit gives).
"""

import sys

import torch
from enhancer_levels import site_arguments, site_data, site_models  # benchmarks/, beside this file

from fedsim_app.models.enhance import structure_levels_of
from fedsim_app.models.enhancer import fit_level_shift
from fedsim_app.models.generator import coarse_target
from fedsim_app.train.quality import HU, refit_latents, structure_means


def real_means(images, labels) -> torch.Tensor:
    """(B, 7) each heart structure's real mean HU, nan where absent."""
    out = torch.full((len(labels), 7), float("nan"), dtype=torch.float64)
    for b, (v, lab) in enumerate(zip(images * HU, labels, strict=True)):
        for c, m in structure_means(v, lab).items():
            out[b, c - 1] = m
    return out


def model_levels(model, chain, images, labels, smean: float, steps: int) -> torch.Tensor:
    """(B, 8) hu/1000: the coarse structure levels of latents fitted as
    :func:`~fedsim_app.train.quality.refit_latents` fits them, with ``refit_smean`` =
    ``smean`` (0: the training's ratio)."""
    cfg = model.config.replace(refit_smean=smean)
    z = refit_latents(cfg, model.prior, model.nets, chain, images, labels, n_iter=steps)
    with torch.no_grad():
        coarse = chain.coarse_ct(chain.mu(model.nets.g_material(z, labels)))
    return structure_levels_of(coarse, labels)


def level_errors(train_levels, train_images, train_labels, test_levels, test_real) -> list:
    """Per heart structure: mean |test level + shift − real| HU over the test volumes, the
    shift fitted on the training volumes as training's end calibration fits it
    (:func:`~fedsim_app.models.enhancer.fit_level_shift`); levels (B, 8) hu/1000."""
    shift = fit_level_shift(train_levels, train_images, train_labels, 8)
    return ((test_levels + shift)[:, 1:].double() * HU - test_real).abs().nanmean(0).tolist()


def main() -> int:
    ap = site_arguments()
    ap.add_argument("--smean", default="1,10", help="structure-mean weights, comma-separated")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps of each latent fit")
    args = ap.parse_args()
    models = site_models(args)
    if models is None:
        return 0
    for key, model in models.items():
        chain, train, test = site_data(args.cohort, key, model)
        n = model.n_labelled
        tr_img, tr_lab = train.images[:n], train.labels[:n]
        te_real = real_means(test.images, test.labels)
        print(f"site {key} (model refit_smean {model.config.refit_smean:g}): |level error| "
              "HU per structure 1..7, worst")
        rows = {}
        for w in (float(v) for v in args.smean.split(",")):
            rows[f"smean {w:g}"] = level_errors(
                model_levels(model, chain, tr_img, tr_lab, w, args.steps), tr_img, tr_lab,
                model_levels(model, chain, test.images, test.labels, w, args.steps), te_real)
        s = chain.config.coarse_size
        own = [structure_levels_of(coarse_target(img * HU, s), lab)
               for img, lab in ((tr_img, tr_lab), (test.images, test.labels))]
        rows["real"] = level_errors(own[0], tr_img, tr_lab, own[1], te_real)
        for name, errs in rows.items():
            print(f"  {name:>10} " + " ".join(f"{e:6.1f}" for e in errs)
                  + f"   worst {max(errs):6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
