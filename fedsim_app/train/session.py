"""Set up one site's training run: the site's chain on the preset's grid, its data, the
trainer (fresh or resumed)."""

from __future__ import annotations

import json
from pathlib import Path

from fedsim_app.errors import FedSimError
from fedsim_app.io.atomic import write_text_atomic
from fedsim_app.train.config import TrainConfig
from fedsim_app.train.data import load_site_data
from fedsim_app.train.glo import CHECKPOINT, Trainer


def model_frame(cfg: TrainConfig):
    """The model's label grid at ``cfg``'s size: the chain's frame, onto which
    ``frame = "case"`` scales every scan (:func:`~fedsim_app.models.shape_stage.frame_grid`)."""
    from fedsim_app.models.generator import ChainConfig
    from fedsim_app.models.shape_stage import frame_grid

    return frame_grid(cfg.label_size, ChainConfig().fov_mm)


def site_chain(site, cfg: TrainConfig, *, with_nets=None, ssm=None, device="cpu"):
    """The site's :class:`~fedsim_app.models.generator.Generator` at the preset's sizes
    on ``device`` (the networks, when given, must be there), optionally with trained
    networks (``Nets``) plugged in.

    The shape model is ``ssm`` (a base :class:`~fedsim_app.shape.ShapeModel`) when given,
    else the trained G_shape's own, else the atlas SSM; the label grid is always the
    model's frame (:func:`~fedsim_app.models.shape_stage.frame_grid`)."""
    from fedsim_app.models.generator import ChainConfig, Generator
    from fedsim_app.models.shape_stage import ssm_for
    from fedsim_app.shape import load_atlas_ssm

    chain_cfg = ChainConfig(label_size=cfg.label_size, coarse_size=cfg.material_size)
    if ssm is None and with_nets is not None:
        ssm = with_nets.g_shape.ssm
    shape = ssm_for(load_atlas_ssm() if ssm is None else ssm, cfg.shape_log_scale)
    kwargs = {"ssm": shape, "grid": model_frame(cfg)}
    if with_nets is not None:
        kwargs |= {"g_shape": with_nets.g_shape, "g_material": with_nets.g_material,
                  "enhancer": with_nets.enhancer}
    return Generator(site, config=chain_cfg, device=device, **kwargs)


def training_shape_model(data_dir: str | Path, n_labelled: int, cfg: TrainConfig,
                         log=print):
    """The base SSM a fresh run's G_shape decodes in (``cfg.shape_model``): None for the
    atlas SSM, else one built from the run's labelled training volumes (each registered
    to the atlas template; a case that fails is named and left out), with the atlas's
    population for ``"labels+atlas"``."""
    if cfg.shape_model == "atlas":
        return None
    from threadpoolctl import threadpool_limits

    from fedsim_app.shape import load_atlas_ssm
    from fedsim_app.shape.from_labels import register_each, ssm_of_registered
    from fedsim_app.train.data import labelled_label_readers

    template = load_atlas_ssm()
    log(f"shape model: registering the {n_labelled} labelled training volume(s) to the atlas "
        "template")
    # numpy's BLAS on one thread, so the model is the same whatever the machine's cores:
    # with two threads its modes came out 2e-10 from one thread's, and training turned
    # that into a different generator (docs/benchmarks.md, Evaluation, 2026-12-04)
    with threadpool_limits(limits=1, user_api="blas"):
        frame = model_frame(cfg) if cfg.frame == "case" else None
        readers = labelled_label_readers(data_dir, n_labelled, frame)
        shapes, _ = register_each(template, readers, log=log)
        model = ssm_of_registered(shapes, template,
                                  with_atlas=cfg.shape_model == "labels+atlas",
                                  where=f"{data_dir} (shape_model = {cfg.shape_model!r})")
    log(f"shape model: {cfg.shape_model} ({len(shapes)} registered heart(s)"
        + (" and the atlas population" if cfg.shape_model == "labels+atlas" else "") + ")")
    # train on the model as the checkpoint will hold it (float32 modes), so a loaded
    # G_shape decodes exactly as it did in training
    return type(model).from_state(model.to_state())


RUN_RECORD = "run.json"  # what the run trains on, so --resume needs only the run folder


def write_run_record(out: str | Path, data_dir: str | Path, site, n_labelled: int) -> Path:
    """Record the run's dataset folder (absolute), site key and label budget."""
    key = getattr(site, "key", site)
    record = {"data": str(Path(data_dir).resolve()), "site": str(key),
              "labels": int(n_labelled)}
    path = Path(out) / RUN_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path


def read_run_record(out: str | Path) -> dict:
    """``{"data", "site", "labels"}`` of a run folder, for ``--resume``."""
    path = Path(out) / RUN_RECORD
    try:
        record = json.loads(path.read_text())
        return {"data": str(record["data"]), "site": str(record["site"]),
                "labels": int(record["labels"])}
    except FileNotFoundError:
        raise FedSimError(f"{path}: not found — is {out} a training run folder? Pass --data/"
                          "--site/--labels to resume a run written before run records "
                          "existed") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FedSimError(f"{path}: cannot read the run record ({exc}); pass --data/--site/"
                          "--labels explicitly") from None


def make_trainer(data_dir: str | Path, site, n_labelled: int, cfg: TrainConfig,
                 out: str | Path, *, resume: bool = False, progress=None,
                 log=print, device="cpu") -> Trainer:
    """A :class:`Trainer` for ``data_dir`` under ``site``'s scanner, writing to ``out``.

    With ``resume``, continues from ``out/checkpoint.pt`` (its config is the run's).
    ``device`` holds the networks, the data and the chain; checkpoints are the same
    whichever it was (a run started on a GPU resumes on the CPU, and back).
    """
    out = Path(out)
    if resume:
        from fedsim_app.train.checkpoint import checkpoint_shape_model, load_checkpoint
        from fedsim_app.train.config import from_dict

        state = load_checkpoint(out / CHECKPOINT)
        cfg = from_dict(state["config"])
        shape_model = checkpoint_shape_model(state, out / CHECKPOINT)
    else:
        shape_model = training_shape_model(data_dir, n_labelled, cfg, log=log)
    chain = site_chain(site, cfg, ssm=shape_model, device=device)
    # the coarse scanner's system matrix (built once per scanner and grid, then cached on
    # disk) makes each coarse CT one matmul instead of a diffct project + FDK
    if cfg.coarse_matrix:
        chain.scanner.build()
    data = load_site_data(data_dir, chain.grid, n_labelled=n_labelled,
                          frame=cfg.frame).to(chain.device)
    vgg = None
    if cfg.vgg_weights:
        from fedsim_app.models.losses import VGGPerceptualLoss

        vgg = VGGPerceptualLoss(cfg.vgg_weights)
    trainer = Trainer(cfg, data, chain, out, progress=progress, vgg=vgg,
                      shape_model=shape_model)
    if resume:
        trainer.load(out / CHECKPOINT)
    else:
        write_run_record(out, data_dir, site, n_labelled)
    return trainer
