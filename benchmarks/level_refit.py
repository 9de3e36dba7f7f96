"""How the latent fit's structure-mean weight sets the enhancer's structure levels.

Run: .venv/bin/python benchmarks/level_refit.py [--checkpoint PATH|default]
         [--sites A,B,C] [--cohort build/cohort] [--smean 1,10] [--steps 300]

An enhancer with ``levels="coarse"`` puts each heart structure at the model's coarse CT's
level of it plus a per-structure shift. The coarse CT of a held-out volume comes from a
latent fitted to the volume reduced to the coarse grid (coarse MSE plus ``refit_smean`` ×
the structure-mean term: ``fedsim_app.train.quality.refit_latents``). For each weight in
``--smean`` this refits the labelled volumes and the test volumes so, fits the shift on
the labelled ones (as training's end calibration does) and prints, per heart structure,
the mean over test volumes of |level + shift − the real structure mean| in HU (the level
path of ``benchmarks/enhancer_levels.py``, whose mean is the enhancer's); then, as
``real``, the same from the real volume's own coarse levels (what a perfect fit gives).
"""

import sys

import torch
from enhancer_levels import site_arguments, site_data, site_models  # benchmarks/, beside this file

from fedsim_app.models.enhance import structure_levels_of
from fedsim_app.models.generator import coarse_target
from fedsim_app.train.quality import HU, fit_latents, structure_means


def real_means(images, labels) -> torch.Tensor:
    """(B, 7) each heart structure's real mean HU, nan where absent."""
    out = torch.full((len(labels), 7), float("nan"), dtype=torch.float64)
    for b, (v, lab) in enumerate(zip(images * HU, labels, strict=True)):
        for c, m in structure_means(v, lab).items():
            out[b, c - 1] = m
    return out


def model_levels(model, chain, images, labels, smean: float, steps: int) -> torch.Tensor:
    """(B, 7) HU: the coarse levels of latents fitted with structure-mean weight ``smean``."""
    mean = (model.prior or {}).get("mean")
    init = (mean if mean is not None else model.nets.z_lab.codes.mean(0)).expand(
        len(images), -1)
    z = fit_latents(chain, model.nets.g_material, images, labels, init, n_iter=steps,
                    w_smean=smean)
    with torch.no_grad():
        coarse = chain.coarse_ct(chain.mu(model.nets.g_material(z, labels)))
    return structure_levels_of(coarse, labels)[:, 1:].double() * HU


def level_errors(train_levels, train_real, test_levels, test_real) -> list[float]:
    """Per structure: mean |test level + shift − real|, the shift the labelled mean gap."""
    shift = (train_real - train_levels).nanmean(0)
    return (test_levels + shift - test_real).abs().nanmean(0).tolist()


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
        tr_real, te_real = real_means(tr_img, tr_lab), real_means(test.images, test.labels)
        print(f"site {key} (model refit_smean {model.config.refit_smean:g}): |level error| "
              "HU per structure 1..7, worst")
        rows = {}
        for w in (float(v) for v in args.smean.split(",")):
            rows[f"smean {w:g}"] = level_errors(
                model_levels(model, chain, tr_img, tr_lab, w, args.steps), tr_real,
                model_levels(model, chain, test.images, test.labels, w, args.steps), te_real)
        s = chain.config.coarse_size
        own = [structure_levels_of(coarse_target(img * HU, s), lab)[:, 1:].double() * HU
               for img, lab in ((tr_img, tr_lab), (test.images, test.labels))]
        rows["real"] = level_errors(own[0], tr_real, own[1], te_real)
        for name, errs in rows.items():
            print(f"  {name:>10} " + " ".join(f"{e:6.1f}" for e in errs)
                  + f"   worst {max(errs):6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
