"""What a trained site model shows: shape fit, material and enhancer HU, noise, C2ST.

Definitions (all on the site's grids at the model's resolution):

- ``shape_iou`` / ``shape_dice``: hard labels of G_shape(z) of each labelled training
  volume against its ground truth: binary (whole heart) IoU and mean per-structure Dice,
  averaged over the volumes.
- For each held-out test volume a latent is fitted (generators frozen, coarse MSE plus
  the structure-mean term weighed as the config's ``refit_smean`` sets, the volume's
  ground-truth labels placing G_material's structures: :func:`refit_latents`), then:
  ``mat_hu_err``: per structure, |mean HU of the model's coarse CT − mean HU of the real
  volume reduced to the coarse grid| (structure = nearest label on the coarse grid),
  averaged over volumes; the worst structure.
  ``enh_hu_err``: the same on the label grid for the enhanced CT given the ground-truth
  labels and the model's coarse CT.
  ``noise_ratio``: noise SD of the enhanced CT / that of the real CT, the noise SD being
  the SD of ``x − box₃(x)`` inside the eroded LV blood pool, pooled over the held-out
  volumes (:func:`pooled_noise_sd`; ``noise_voxels``: the eroded voxels per volume it
  rests on). Pooled, not a sum of per-volume SDs (the figure until 2026-12-06,
  docs/benchmarks.md): at the ``cpu`` preset's 32³ a paediatric LV may have 7 or 9
  interior voxels, whose SD alone is uncertain by about the target's 25 %, and the sum
  weighed it as much as a 45-voxel one (or, under :data:`MIN_INTERIOR`, took the LV's
  edges instead).
- ``c2st`` / ``c2st_coarse``: a small CNN learns to tell real slices from enhanced ones
  (resp. coarse CT upsampled) of the labelled training volumes; its accuracy on the test
  volumes' slices (0.5 = indistinguishable). Only the axial slices that cross the heart
  are compared (:func:`heart_slices`), and the figure is the mean over
  :data:`C2ST_SEEDS` classifiers (``c2st_lo`` / ``c2st_hi``: the lowest and highest).
  Why (docs/benchmarks.md, issue 9): one classifier's accuracy moved by up to 0.3 with
  its seed on the same slices, and at the paediatric sites most slices are the chest
  above or below a small heart, or air, which the coarse CT gets as right as the enhancer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedsim_app.device import seeded
from fedsim_app.errors import FedSimError
from fedsim_app.models.generator import coarse_target, enhance, upsample_coarse
from fedsim_app.models.losses import structure_mean_loss
from fedsim_app.models.material import coarse_label_masks, coarse_labels
from fedsim_app.models.shape_stage import decode, hard_labels

HU = 1000.0
QUALITY_FILE = "quality.json"  # a run's figures as fedsim train or federate printed them


@dataclass(frozen=True)
class SiteQuality:
    site: str
    shape_iou: float
    shape_dice: float
    mat_hu_err: float
    enh_hu_err: float
    noise_ratio: float
    c2st: float
    c2st_coarse: float
    c2st_lo: float
    c2st_hi: float
    # the eroded LV voxels per held-out volume that noise_ratio rests on (mean); under
    # MIN_INTERIOR in all of them together, the noise is the whole LV's, edges and all
    noise_voxels: float = float("nan")

    def line(self) -> str:
        d = asdict(self)
        return " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in d.items())


def shape_scores(chain, g_shape, z, labels) -> tuple[float, float]:
    """(binary IoU, mean per-structure Dice) of G_shape(z) (B, 32) against labels."""
    with torch.no_grad():
        pred = hard_labels(chain.ssm, decode(chain.ssm, g_shape(z)), chain.grid)
    fg_p, fg_t = pred > 0, labels > 0
    iou = ((fg_p & fg_t).sum((1, 2, 3)) / (fg_p | fg_t).sum((1, 2, 3)).clamp_min(1)).mean()
    dice = []
    for c in range(1, 8):
        p, t = pred == c, labels == c
        denom = (p.sum((1, 2, 3)) + t.sum((1, 2, 3))).float()
        dice.append(torch.where(denom > 0, 2 * (p & t).sum((1, 2, 3)) / denom.clamp_min(1),
                                torch.ones_like(denom)))
    return float(iou), float(torch.stack(dice).mean())


def fit_latents(chain, g_material, images, labels, init, *, n_iter: int = 300,
                lr: float = 0.1, w_smean: float = 0.0):
    """Latents (B, 32) whose coarse CT over ``labels`` (B, n, n, n) best matches
    ``images`` (B, n, n, n) hu/1000 reduced to the coarse grid (generators frozen): the
    coarse MSE plus ``w_smean`` × the structure-mean term (the training's weights' ratio)."""
    s = chain.config.coarse_size
    target = coarse_target(images * HU, s) / HU
    masks = coarse_label_masks(labels, s)
    z = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(n_iter):
        coarse = chain.coarse_ct(chain.mu(g_material(z, labels))) / HU
        loss = F.mse_loss(coarse, target)
        if w_smean:
            loss = loss + w_smean * structure_mean_loss(coarse, target, masks)
        # z's gradient only: the generators' .grad stay as they were (a trainer's step)
        (z.grad,) = torch.autograd.grad(loss, [z])
        opt.step()
    return z.detach()


def heldout_latents(model, chain, test, *, n_iter: int = 300):
    """Latents fitted to each held-out volume of ``test`` (its labels given) in ``n_iter``
    Adam steps, starting from the prior's mean (the labelled latents' mean when the model
    has no prior)."""
    return refit_latents(model.config, model.prior, model.nets, chain, test.images,
                         test.labels, n_iter=n_iter)


def refit_latents(cfg, prior: dict | None, nets, chain, images, labels, *,
                  n_iter: int = 300):
    """:func:`fit_latents` of volumes ``images`` with ``labels`` from the ``prior``'s mean
    (the labelled latents' mean when there is none), the structure-mean term weighed
    ``cfg.refit_smean``, or when that is 0 as ``cfg``'s training weighed it."""
    mean = (prior or {}).get("mean")
    codes = nets.z_lab.codes
    init = (mean if mean is not None else codes.mean(0)).to(codes.device).expand(
        len(images), -1)
    ratio = cfg.refit_smean or (cfg.w_smean / cfg.w_mse if cfg.w_mse else 0.0)
    return fit_latents(chain, nets.g_material, images, labels, init, n_iter=n_iter,
                       w_smean=ratio)


def structure_means(volume, labels) -> dict[int, float]:
    return {c: float(volume[labels == c].mean()) for c in range(1, 8) if (labels == c).any()}


def worst_structure_error(pairs) -> float:
    """``pairs``: [(model volume, real volume, labels)]; mean over volumes of each
    structure's |Δ mean|, then the worst structure."""
    errs: dict[int, list[float]] = {}
    for model, real, labels in pairs:
        a, b = structure_means(model, labels), structure_means(real, labels)
        for c in a:
            errs.setdefault(c, []).append(abs(a[c] - b[c]))
    return max(sum(v) / len(v) for v in errs.values())


MIN_INTERIOR = 8  # fewer eroded voxels than this: the noise is taken over the whole structure


def _interior(labels, structure: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask, interior)`` (n, n, n) bool of ``structure``: its voxels, and those whose
    3×3×3 neighbourhood is all ``structure`` (a min filter)."""
    mask = (labels == structure).float()[None, None]
    return mask[0, 0] > 0.5, -F.max_pool3d(-mask, 3, stride=1, padding=1)[0, 0] > 0.5


def noise_voxels(labels, structure: int = 1) -> int:
    """Voxels of ``structure``'s eroded interior, where :func:`noise_sd` measures."""
    return int(_interior(labels, structure)[1].sum())


def _residual(volume) -> torch.Tensor:
    """The high-pass residual ``x − box₃(x)`` of a volume (n, n, n)."""
    x = volume[None, None]
    return (x - F.avg_pool3d(x, 3, stride=1, padding=1, count_include_pad=False))[0, 0]


def pooled_noise_sd(volumes, labels, structure: int = 1, *,
                    interior_only: bool = False) -> float:
    """The pooled SD of the residual ``x − box₃(x)`` in the eroded ``structure`` of
    ``volumes`` with ``labels`` (each (n, n, n)): ``sqrt(Σ_v Σ_i (r_vi − r̄_v)² / Σ_v (n_v −
    1))``, each volume's residuals about their own mean, so that a volume weighs by the
    voxels its estimate rests on (a volume with no interior adds nothing).

    With fewer than :data:`MIN_INTERIOR` interior voxels in all the volumes together, the
    figure is taken over the whole structure (its edges then dominate: it is the edges'
    sharpness more than noise), or NaN when ``interior_only``.
    """
    parts = [(_residual(v), *_interior(lab, structure))
             for v, lab in zip(volumes, labels, strict=True)]
    interior = sum(int(inner.sum()) for _, _, inner in parts) >= MIN_INTERIOR
    if not interior and interior_only:
        return float("nan")
    squares, dof = 0.0, 0
    for resid, mask, inner in parts:
        x = resid[inner if interior else mask].double()
        if len(x) >= 2:
            squares += float(((x - x.mean()) ** 2).sum())
            dof += len(x) - 1
    return (squares / dof) ** 0.5 if dof else float("nan")


def noise_sd(volume, labels, structure: int = 1) -> float:
    """:func:`pooled_noise_sd` of one volume: the SD of its residual in the eroded
    ``structure``, or over the whole structure with fewer than :data:`MIN_INTERIOR`
    interior voxels."""
    return pooled_noise_sd([volume], [labels], structure)


class SliceClassifier(nn.Module):
    """The two-sample test's small CNN: slice (N, 1, H, W) → logit (N,)."""

    def __init__(self, width: int = 16):
        super().__init__()
        layers, n_in = [], 1
        for w in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(n_in, w, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            n_in = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(n_in, 1)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))[:, 0]


def c2st_accuracy(real_train, fake_train, real_test, fake_test, *, seed: int = 0,
                  n_iter: int = 300, batch: int = 64) -> float:
    """Held-out accuracy of a classifier trained on (real_train vs fake_train) slices."""
    g = torch.Generator().manual_seed(seed)  # batch picks on the CPU, whatever the device
    device = real_train.device
    with seeded(seed):  # the classifier's start
        net = SliceClassifier().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.cat([real_train, fake_train]).clamp(-1, 2)
    y = torch.cat([torch.ones(len(real_train)), torch.zeros(len(fake_train))]).to(device)
    for _ in range(n_iter):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(x[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        xt = torch.cat([real_test, fake_test]).clamp(-1, 2)
        yt = torch.cat([torch.ones(len(real_test)), torch.zeros(len(fake_test))]).to(device)
        return float(((net(xt) > 0).float() == yt).float().mean())


C2ST_SEEDS = 5  # classifiers per two-sample test (each its own initialisation and batches)


@dataclass(frozen=True)
class C2ST:
    """A two-sample test's accuracy: the mean over classifiers, and its range."""

    mean: float
    lo: float
    hi: float


def c2st(real_train, fake_train, real_test, fake_test, *, seed: int = 0,
         n_seeds: int = C2ST_SEEDS, n_iter: int = 300) -> C2ST:
    """:func:`c2st_accuracy` of ``n_seeds`` classifiers (seeds ``seed``, ``seed + 1``, …).

    Raises
    ------
    FedSimError
        when a set has no slices (e.g. no slice crossed the heart), naming it
    """
    for name, x in (("real training", real_train), ("model training", fake_train),
                    ("real held-out", real_test), ("model held-out", fake_test)):
        if len(x) == 0:
            raise FedSimError(f"the two-sample test's {name} set has no slices: the "
                              "volumes' labels cross no heart structure")
    accs = [c2st_accuracy(real_train, fake_train, real_test, fake_test, seed=seed + i,
                          n_iter=n_iter) for i in range(n_seeds)]
    return C2ST(sum(accs) / len(accs), min(accs), max(accs))


def _as_slices(vols):  # (B, K, H, W) → (B·K, 1, H, W)
    return vols.reshape(-1, 1, *vols.shape[-2:])


def heart_slices(volumes, labels) -> torch.Tensor:
    """The axial slices (N, 1, H, W) of ``volumes`` (B, K, H, W) whose ``labels``
    (B, K, H, W) cross a heart structure (any label > 0)."""
    labels = torch.as_tensor(labels)
    keep = (labels > 0).flatten(2).any(2).flatten()
    return _as_slices(torch.as_tensor(volumes))[keep]


@torch.no_grad()
def coarse_and_enhanced(chain, z, labels, seed: int):
    """``(coarse CT (B, s, s, s) HU, enhanced CT (B, n, n, n) hu/1000)`` of latents ``z``
    over ground-truth ``labels``, the enhancer's noise drawn from ``seed``."""
    with seeded(seed, z.device):
        coarse = chain.coarse_ct(chain.mu(chain.g_material(z, labels)))
        return coarse, enhance(coarse, labels, chain.enhancer) / HU


@dataclass(frozen=True)
class Effort:
    """How much work an evaluation does: Adam steps of the held-out latents' fit,
    classifiers per two-sample test, and each classifier's steps."""

    fit_steps: int = 300
    c2st_seeds: int = C2ST_SEEDS
    c2st_iters: int = 300


FULL = Effort()  # the figures of docs/benchmarks.md and the targets
# a look at a run in seconds (the smoke preset's): the held-out fit stops early and one
# short classifier decides each two-sample test, so the figures are rough
QUICK = Effort(fit_steps=20, c2st_seeds=1, c2st_iters=60)


def evaluate_site(model, train, test, *, seed: int = 0, effort: Effort = FULL) -> SiteQuality:
    """Quality of a :class:`~fedsim_app.train.model_io.SiteModel` on its training data
    ``train`` and held-out ``test`` (:class:`~fedsim_app.train.data.SiteData`), with
    ``effort``'s work (:data:`FULL`: the recorded figures). Runs on the model's device."""
    chain = model.chain()
    nets = model.nets
    n_lab = model.n_labelled
    train, test = train.to(model.device), test.to(model.device)
    iou, dice = shape_scores(chain, nets.g_shape, nets.z_lab.codes, train.labels[:n_lab])
    z_test = heldout_latents(model, chain, test, n_iter=effort.fit_steps)
    coarse, enhanced = coarse_and_enhanced(chain, z_test, test.labels, seed)
    coarse_real = coarse_target(test.images * HU, chain.config.coarse_size)
    s = chain.config.coarse_size
    mat_err = worst_structure_error(zip(coarse, coarse_real, coarse_labels(test.labels, s),
                                        strict=True))
    enh_err = worst_structure_error(zip(enhanced * HU, test.images * HU, test.labels,
                                        strict=True))
    noise_ratio = pooled_noise_sd(enhanced, test.labels) / pooled_noise_sd(test.images,
                                                                           test.labels)
    # the classifier learns on the labelled training volumes, is scored on the test ones
    coarse_tr, enhanced_tr = coarse_and_enhanced(chain, nets.z_lab.codes, train.labels[:n_lab],
                                                 seed + 1)
    shape = tuple(train.labels.shape[1:])
    lab_tr, lab_te = train.labels[:n_lab], test.labels
    real_tr, real_te = heart_slices(train.images[:n_lab], lab_tr), heart_slices(test.images,
                                                                                lab_te)
    tests = {"n_seeds": effort.c2st_seeds, "n_iter": effort.c2st_iters, "seed": seed}
    enh = c2st(real_tr, heart_slices(enhanced_tr, lab_tr), real_te,
               heart_slices(enhanced, lab_te), **tests)
    coarse_only = c2st(real_tr, heart_slices(upsample_coarse(coarse_tr, shape) / HU, lab_tr),
                       real_te, heart_slices(upsample_coarse(coarse, shape) / HU, lab_te),
                       **tests)
    support = sum(noise_voxels(lab) for lab in test.labels) / len(test.labels)
    return SiteQuality(model.site, iou, dice, mat_err, enh_err, noise_ratio,
                       enh.mean, coarse_only.mean, enh.lo, enh.hi, support)


def evaluate_dataset(model, folder, *, train=None, seed: int = 0,
                     effort: Effort = FULL) -> tuple[SiteQuality, int]:
    """``(quality, held-out volumes)`` of ``model`` on the dataset in ``folder`` it was
    trained on: its training split (``train``, a :class:`~fedsim_app.train.data.SiteData`
    already read, or read here) and its test split.

    Raises
    ------
    FedSimError
        when the folder's training cases are not the model's, or it has no test split
    """
    from fedsim_app.train.data import load_site_data
    from fedsim_app.train.session import model_frame

    grid, frame = model_frame(model.config), model.config.frame
    if train is None:
        train = load_site_data(folder, grid, n_labelled=model.n_labelled, frame=frame)
    if tuple(train.case_ids) != tuple(model.case_ids):
        raise FedSimError(f"{folder}: not the dataset site {model.site}'s model was trained "
                          "on (other training cases) — score it on that dataset")
    test = load_site_data(folder, grid, n_labelled=0, subset="test", frame=frame)
    return evaluate_site(model, train, test, seed=seed, effort=effort), len(test.case_ids)


# issue 9's targets: figure → (comparison, bound); the noise ratio's is |ratio − 1| ≤ 0.25
TARGETS = {"shape_iou": (">=", 0.85), "shape_dice": (">=", 0.75), "mat_hu_err": ("<=", 40.0),
           "enh_hu_err": ("<=", 30.0), "noise_ratio": ("within", 0.25),
           "c2st": ("<=", 0.75), "c2st_coarse": (">=", 0.95)}


def target_text(name: str) -> str:
    """``name``'s target as text: ``">= 0.85"``, ``"1 ± 0.25"``."""
    op, bound = TARGETS[name]
    return f"1 ± {bound:g}" if op == "within" else f"{op} {bound:g}"


def target_misses(figures: dict) -> list[str]:
    """The names of the figures in ``figures`` (a :class:`SiteQuality` as a dict) that
    miss :data:`TARGETS`, in its order; a NaN figure misses."""
    misses = []
    for name, (op, bound) in TARGETS.items():
        v = float(figures[name])
        if not {">=": v >= bound, "<=": v <= bound, "within": abs(v - 1) <= bound}[op]:
            misses.append(name)  # NaN compares False: it misses
    return misses


def worst(results: list[SiteQuality]) -> str:
    """The benchmark's last line: the worst site's value of each figure."""
    return (f"shape_iou={min(r.shape_iou for r in results):.3f} "
            f"mat_hu_err={max(r.mat_hu_err for r in results):.1f} "
            f"enh_hu_err={max(r.enh_hu_err for r in results):.1f} "
            f"noise_ratio={max(results, key=lambda r: abs(r.noise_ratio - 1)).noise_ratio:.3f} "
            f"c2st={max(r.c2st for r in results):.3f} "
            f"c2st_coarse={min(r.c2st_coarse for r in results):.3f}")
