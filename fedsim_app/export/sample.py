"""What an export samples: a trained site model, or the atlas SSM with Fix-Mat.

An :class:`ExportModel` draws one case's randomness into a record (latent, noise seed),
then renders it through the one chain (:class:`fedsim_app.models.generator.Generator`)
with no randomness of its own, so the record replays the volume bit for bit on the
same device (:func:`replay`).

- With a training checkpoint: latents from the normal fitted to the training latents (the
  checkpoint's phase-3 prior, or fitted to its labelled latents when phase 3 never ran),
  G_shape, G_material and the site enhancer.
- Without one (``--checkpoint default`` while no default checkpoint ships): the atlas SSM's
  21 parameters from :class:`~fedsim_app.shape.ShapeSampler`, Fix-Mat, and the coarse CT
  upsampled (no enhancer); every record says so.

Novelty ("new or memorised?") compares each case with what the model knows of its
training set, without reading the training data: for a checkpoint, the training
volumes' latents and the hearts G_shape makes of them; for the atlas, the SSM's training
hearts (the atlas shapes it was built from) and their mode weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from fedsim_app.device import seeded
from fedsim_app.errors import FedSimError

ATLAS = "atlas"
DEFAULT = "default"
DEFAULT_CHECKPOINT = ("checkpoints", "default.pt")
ATLAS_LATENT = "atlas SSM: 21 parameters from ShapeSampler (no latent, no G_shape)"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index`` of an export seeded ``seed`` (independent of ``n``)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def resolve_checkpoint(spec: str | Path | None) -> Path | None:
    """``RUN`` folder or file → the checkpoint file (a ``fedsim train`` run's
    ``checkpoint.pt``, a ``fedsim federate`` run's model ``model.pt``); ``default`` → the
    shipped default checkpoint, or None (the atlas model) while none ships; ``atlas`` →
    None."""
    if spec is None or str(spec) == ATLAS:
        return None
    if str(spec) == DEFAULT:
        from fedsim_app.assets import asset_path

        path = asset_path(*DEFAULT_CHECKPOINT, must_exist=False)
        return path if path.is_file() else None
    path = Path(spec)
    if path.is_dir():
        from fedsim_app.train.glo import CHECKPOINT
        from fedsim_app.train.model_io import RUN_MODEL as MODEL

        # a federated run's folder holds its model (and server.pt, which is no model)
        path = path / (MODEL if (path / MODEL).is_file() and
                       not (path / CHECKPOINT).is_file() else CHECKPOINT)
    return path


@dataclass(frozen=True)
class CaseDraw:
    """One case's randomness: everything :meth:`ExportModel.render` needs."""

    index: int
    seed: int  # the case's seed (latent draw and enhancer noise)
    latent: tuple[float, ...] | None  # (32,) for a trained model
    params: tuple[float, ...] | None  # (21,) for the atlas model


class ExportModel:
    """A site's generator plus what it knows of its training set.

    Build with :func:`load_export_model`.
    """

    def __init__(self, generator, source: dict, *, prior=None, train_latents=None,
                 train_ids=(), sampler=None, written_grid=None):
        self.generator = generator
        # the grid the volumes are written on: the generator's, or for a model trained
        # with frame = "case" that frame at its training scans' median field of view
        self.written_grid = generator.grid if written_grid is None else written_grid
        self.source = source
        self.prior = prior  # (mean (32,), cov (32, 32)) or None
        self.train_latents = train_latents  # (N, 32) or None
        self.train_ids = tuple(train_ids)
        self.sampler = sampler

    @property
    def written_coarse_grid(self):
        """The coarse grid on the written grid's scale (:attr:`written_grid`'s frame)."""
        from fedsim_app.models.generator import coarse_grid_of

        return coarse_grid_of(self.written_grid, self.generator.config.coarse_size)

    def written_meshes(self, vertices) -> dict:
        """``{structure: (vertices, faces)}`` of one shape's vertices (V, 3) in the written
        grid's millimetres (the generator's frame scaled about its centre)."""
        src, dst = self.generator.grid, self.written_grid
        k = dst.spacing_mm[0] / src.spacing_mm[0]
        centre = src.center_mm
        return self.generator.meshes(centre + (np.asarray(vertices) - centre) * k)

    @property
    def trained(self) -> bool:
        return self.generator.g_shape is not None

    # -- randomness into a record -----------------------------------------------------
    def draw(self, index: int, seed: int, latent=None) -> CaseDraw:
        """Case ``index``: its latent from the prior (or ``latent`` given), or for the
        atlas model its 21 parameters (``latent`` then holds 21 parameters)."""
        s = case_seed(seed, index)
        if latent is not None:
            values = tuple(float(v) for v in np.asarray(latent, np.float32).reshape(-1))
            want = 32 if self.trained else 21
            if len(values) != want:
                raise FedSimError(f"latent {index} has {len(values)} values; this model "
                                  f"needs {want}")
            return CaseDraw(index, s, values, None) if self.trained else \
                CaseDraw(index, s, None, values)
        if self.trained:
            from fedsim_app.train.latents import sample_normal

            z = sample_normal(*self.prior, 1, seed=s)[0]
            return CaseDraw(index, s, tuple(float(v) for v in z), None)
        p = self.sampler.sample(s, 1)[0].astype(np.float32)
        return CaseDraw(index, s, None, tuple(float(v) for v in p))

    # -- deterministic rendering ------------------------------------------------------
    @torch.no_grad()
    def render(self, draw: CaseDraw):
        """The chain's result (batch of one) for ``draw``; enhancer noise seeded by it."""
        gen = self.generator
        with seeded(draw.seed, gen.device):
            if draw.latent is not None:
                z = torch.tensor([draw.latent], dtype=torch.float32, device=gen.device)
                return gen(z=z)
            p = torch.tensor([draw.params], dtype=torch.float32, device=gen.device)
            return gen(params=p)

    # -- novelty ----------------------------------------------------------------------
    @cached_property
    def training_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes (N, D), binary hearts (N, n, n, n) bool) of the training set."""
        gen = self.generator
        if self.trained:
            from fedsim_app.models.shape_stage import decode, hard_labels

            codes = self.train_latents.numpy()
            with torch.no_grad():
                hearts = []
                for z in self.train_latents:  # one at a time: flat memory at 128³
                    params = gen.g_shape(z[None].to(gen.device))
                    labels = hard_labels(gen.ssm, decode(gen.ssm, params), gen.grid)
                    hearts.append(labels[0].cpu().numpy() > 0)
            return codes, np.stack(hearts)
        return _atlas_reference(gen)

    def novelty(self, draw: CaseDraw, labels: np.ndarray) -> dict:
        """Distance of a case to its nearest training volume.

        ``latent_distance``: Euclidean distance to the nearest training latent (for the
        atlas model, in the 14 normalised mode weights); ``heart_iou``: the largest IoU of
        the binary heart (labels > 0) with a training heart; with the ids of both.
        """
        codes, hearts = self.training_reference
        if draw.latent is not None:
            mine = np.asarray(draw.latent, np.float64)
        else:
            mine = np.asarray(draw.params[:codes.shape[1]], np.float64)
        dist = np.linalg.norm(codes.astype(np.float64) - mine, axis=1)
        heart = np.asarray(labels) > 0
        inter = np.array([np.count_nonzero(heart & h) for h in hearts], np.float64)
        union = np.array([np.count_nonzero(heart | h) for h in hearts], np.float64)
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        i, j = int(np.argmin(dist)), int(np.argmax(iou))
        return {"latent_distance": float(dist[i]), "nearest_by_latent": self.train_ids[i],
                "heart_iou": float(iou[j]), "nearest_by_iou": self.train_ids[j],
                "reference": self.source["novelty_reference"]}


def _atlas_reference(gen) -> tuple[np.ndarray, np.ndarray]:
    """The atlas SSM's training hearts: normalised mode weights (N, 14), binary hearts."""
    from fedsim_app.models.shape_stage import hard_labels
    from fedsim_app.shape import N_MODES
    from fedsim_app.shape.atlas import population_shapes

    shapes, _ = population_shapes(ATLAS)  # (N, V, 3) world mm, the SSM's training set
    bounds = gen.ssm.mode_bounds()
    codes = np.stack([gen.ssm.encode(s)[0][:N_MODES] / bounds for s in shapes])
    hearts = []
    for s in shapes:
        v = torch.as_tensor(s[None], dtype=torch.float32, device=gen.device)
        hearts.append(hard_labels(gen.ssm, v, gen.grid)[0].cpu().numpy() > 0)
    return codes, np.stack(hearts)


def _load_site_model(path: Path, site_key: str):
    """The :class:`~fedsim_app.train.model_io.SiteModel` of ``site_key`` in a training
    checkpoint or a bundle of sites (the default checkpoint)."""
    from fedsim_app.train.model_io import load_site_models

    try:
        models = load_site_models(path)
    except FedSimError:
        raise
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
        msg = " ".join(str(exc).split())[:160]
        raise FedSimError(f"{path}: checkpoint lacks or mismatches its networks ({msg}) — "
                          "use a checkpoint written by fedsim train") from None
    if site_key not in models:
        raise FedSimError(f"{path}: trained for site {', '.join(models)}, not site "
                          f"{site_key} — export with --site {next(iter(models))}, or pass "
                          "that site's checkpoint")
    return models[site_key]


def load_export_model(checkpoint: str | Path | None, site, *, size: int = 128,
                      device=None, precision: str = "float32") -> ExportModel:
    """The model ``fedsim export`` samples for ``site`` on a ``size``³ label grid.

    Parameters
    ----------
    checkpoint : a training run folder or checkpoint file; ``"default"`` (the shipped
        default checkpoint, or the atlas model while none ships); ``"atlas"`` or None
    site : site key or :class:`~fedsim_app.sites.Site`
    size : voxels per axis of the exported volumes (a multiple of 16)
    device : torch device (default CPU: replays are bit-exact per device)
    precision : the enhancer's convolutions, ``"float32"`` or ``"bfloat16"`` (faster on
        CPUs with bf16 instructions, not bit-equal to float32; records say which)
    """
    from fedsim_app.models.generator import ChainConfig, Generator
    from fedsim_app.sites import get_site

    site = get_site(site)
    if size < 16 or size % 16:
        raise FedSimError(f"--size {size}: use a multiple of 16 (16, 32, ..., 128)")
    device = torch.device(device or "cpu")
    from fedsim_app.models.enhance_infer import PRECISIONS

    if precision not in PRECISIONS:
        raise FedSimError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    path = resolve_checkpoint(checkpoint)
    if path is None:
        from fedsim_app.shape import ShapeSampler

        gen = Generator(site, config=ChainConfig(label_size=size), device=device)
        source = {"model": "atlas SSM + Fix-Mat (no trained checkpoint)",
                  "checkpoint": None, "checkpoint_sha256": None, "preset": ATLAS,
                  "training": {"data": "the atlas SSM's training hearts",
                               "n_volumes": None},
                  "latent_source": ATLAS_LATENT,
                  "novelty_reference": "atlas SSM training hearts (mode weights; hearts)"}
        model = ExportModel(gen, source, sampler=ShapeSampler())
        model.train_ids = tuple(f"atlas_{i:02d}" for i in range(_atlas_count()))
        return model
    if not path.is_file():
        raise FedSimError(f"{path}: no checkpoint there — pass a `fedsim train` run folder or "
                          "its checkpoint.pt, 'default' or 'atlas'")
    trained = _load_site_model(path, site.key)
    cfg, nets = trained.config, trained.nets
    latents = [nets.z_lab.codes.detach()]
    if nets.z_unl is not None:
        latents.append(nets.z_unl.codes.detach())
    train_latents = torch.cat(latents)
    if trained.prior:
        fitted = trained.prior
        prior_source = "the checkpoint's phase-3 normal fitted to the labelled latents"
    else:
        from fedsim_app.train.latents import latent_prior

        fitted = latent_prior(nets.z_lab.codes)  # the normal phase 3 would have fitted
        prior_source = "normal fitted to the checkpoint's labelled latents (no phase 3 yet)"
    prior = (fitted["mean"].float(), fitted["cov"].float())
    sha = file_sha256(path)
    for m in (nets.g_shape, nets.g_material, nets.enhancer):
        m.to(device)
    gen = Generator(site, config=ChainConfig(label_size=size, coarse_size=cfg.material_size,
                                             precision=precision),
                    g_shape=nets.g_shape, g_material=nets.g_material, enhancer=nets.enhancer,
                    enhancer_checkpoint=f"{trained.source} (sha256 {sha[:12]})", device=device)
    case_ids = list(trained.case_ids)
    n_lab = trained.n_labelled
    source = {"model": f"trained site model ({cfg.preset} preset)", "checkpoint": str(path),
              "checkpoint_sha256": sha, "preset": cfg.preset,
              "training": {"site": trained.site, "case_ids": case_ids,
                           "n_labelled": n_lab, "n_unlabelled": len(case_ids) - n_lab,
                           "n_volumes": len(case_ids), "label_size": cfg.label_size,
                           "phase3_prior": bool(trained.prior), "seed": cfg.seed},
              "latent_source": prior_source,
              "novelty_reference": "training latents; hearts G_shape makes of them"}
    ids = case_ids[: len(train_latents)] if len(case_ids) >= len(train_latents) else \
        [f"train_{i:03d}" for i in range(len(train_latents))]
    written = None
    if cfg.frame == "case":
        from fedsim_app.train.data import scan_grid

        if not trained.scan_fov_mm:
            raise FedSimError(f"{path}: trained with frame = \"case\" but records no scan "
                              "fields of view, so its volumes have no size in millimetres — "
                              "retrain it with this FedSim")
        written = scan_grid(gen.grid, trained.scan_fov_mm)
        source["training"]["frame"] = "case"
        source["training"]["scan_fov_mm_median"] = round(float(np.median(
            trained.scan_fov_mm)), 2)
    return ExportModel(gen, source, prior=prior, train_latents=train_latents.cpu(),
                       train_ids=ids, written_grid=written)


def _atlas_count() -> int:
    from fedsim_app import anatomy

    return int(anatomy.ATLAS_SIZE)


__all__ = ["ATLAS", "DEFAULT", "CaseDraw", "ExportModel", "case_seed", "file_sha256",
           "load_export_model", "resolve_checkpoint"]
