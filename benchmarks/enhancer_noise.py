"""How much of a site enhancer's texture comes from its noise input.

Run: .venv/bin/python benchmarks/enhancer_noise.py [--checkpoint PATH|default]
         [--sites A,B,C] [--cohort build/cohort] [--rho 0.7]

The enhancer takes one channel of Gaussian noise beside its conditioning (issue 9's
SPADE generator). If it learnt to ignore that channel, its "noise" is a fixed pattern
drawn from the labels and the coarse CT, and no change to the draw (its amplitude, its
correlation along z) can move the noise figure. For each site, on the held-out test
volumes with latents fitted as ``benchmarks/train_quality.py`` fits them, the LV noise
SD (``fedsim_app.train.quality.pooled_noise_sd``, HU, pooled over the test volumes) of:

- ``real``: the real CT;
- ``enhanced``: the enhancer's CT with the usual draw (seed 0);
- ``draw``: the difference of two draws (seeds 0 and 1) / √2: the part of the texture
  that is noise;
- ``zero`` / ``double`` / ``ar``: the enhanced CT with the draw set to zero, doubled, or
  correlated along z (AR(1) over the axial slices, coefficient ``--rho``, each slice
  still N(0, 1));

and ``head_noise``: the norm of the first convolution's weights on the noise channel
over the median norm on a conditioning channel; ``gain``: the median |gain| of the noise
injected before the last block (``enhancer_noise = "inject"``; it starts at 0.1, nan for
an enhancer without it). The last line is the largest
``draw / enhanced`` over the sites.
"""

import math
import sys
from pathlib import Path

import torch
from enhancer_levels import site_arguments, site_models  # benchmarks/, beside this file

from fedsim_app.models.enhance import enhance
from fedsim_app.sites import get_site
from fedsim_app.train.data import load_site_data, split_cases
from fedsim_app.train.quality import HU, heldout_latents, pooled_noise_sd


def ar1_along_slices(noise: torch.Tensor, rho: float) -> torch.Tensor:
    """``noise`` (B, K, 1, H, W) i.i.d. N(0, 1) made AR(1) along K with coefficient
    ``rho``; each slice keeps unit variance."""
    out = noise.clone()
    c = math.sqrt(1 - rho * rho)
    for k in range(1, noise.shape[1]):
        out[:, k] = rho * out[:, k - 1] + c * noise[:, k]
    return out


def head_noise_share(enhancer) -> float:
    """Weight norm on the noise channel (the head's last input) / the median over the
    conditioning channels; nan for an enhancer without that head."""
    head = getattr(enhancer, "head", None)
    if not isinstance(head, torch.nn.Conv2d):
        return float("nan")
    norms = head.weight.detach().float().transpose(0, 1).flatten(1).norm(dim=1)
    return float(norms[-1] / norms[:-1].median())


def injected_gain(enhancer) -> float:
    """Median |per-channel gain| of the injected noise; nan without injection."""
    gain = getattr(enhancer, "noise_gain", None)
    return float("nan") if gain is None else float(gain.detach().abs().median())


def site_noise(model, test, rho: float) -> dict[str, float]:
    chain = model.chain()
    z = heldout_latents(model, chain, test)  # fitted by gradient: outside no_grad
    with torch.no_grad():
        return _noise_figures(chain, z, test, rho)


def _noise_figures(chain, z, test, rho: float) -> dict[str, float]:
    coarse = chain.coarse_ct(chain.mu(chain.g_material(z, test.labels)))
    shape = (len(test.labels), test.labels.shape[1], 1, *test.labels.shape[2:])
    draws = [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    out = {name: enhance(coarse, test.labels, chain.enhancer, noise=noise) / HU
           for name, noise in (("enhanced", draws[0]), ("other", draws[1]),
                               ("zero", torch.zeros(shape)), ("double", 2 * draws[0]),
                               ("ar", ar1_along_slices(draws[0], rho)))}

    def sd(vols) -> float:  # pooled over the volumes, HU
        return HU * pooled_noise_sd(vols, test.labels)

    figures = {"real": sd(test.images),
               "draw": sd((out["enhanced"] - out["other"]) / math.sqrt(2))}
    figures |= {name: sd(out[name]) for name in ("enhanced", "zero", "double", "ar")}
    figures["head_noise"] = head_noise_share(chain.enhancer)
    figures["gain"] = injected_gain(chain.enhancer)
    return figures


def main() -> int:
    ap = site_arguments()
    ap.add_argument("--rho", type=float, default=0.7)
    args = ap.parse_args()
    models = site_models(args)
    if models is None:
        return 0
    shares = []
    for key, model in models.items():
        folder = Path(args.cohort) / get_site(key).dataset.folder
        grid, frame = model.chain().grid, model.config.frame
        if tuple(c.case_id for c in split_cases(folder)["train"]) != tuple(model.case_ids):
            print(f"site {key}: the cohort at {folder} is not the one the model was trained "
                  "on (other training cases; `make assets` writes build/cohort)",
                  file=sys.stderr)
            return 2
        test = load_site_data(folder, grid, n_labelled=0, subset="test", frame=frame)
        f = site_noise(model, test, args.rho)
        shares.append(f["draw"] / f["enhanced"])
        print(f"site {key}: " + " ".join(f"{k}={v:.2f}" for k, v in f.items())
              + f" noise_ratio={f['enhanced'] / f['real']:.3f}", flush=True)
    print(f"draw_over_enhanced={max(shares):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
