"""Build a shape model from a dataset's label maps (the paper's route from real hearts).

Every label map is registered (:func:`~fedsim_app.shape.register.register_labels`) to
the template of a model (the shipped atlas SSM by default), so all hearts share its
vertices; the registered hearts, moved to the template's centre (a scan's frame says
nothing about the heart), go through generalised Procrustes + PCA
(:func:`~fedsim_app.shape.model.build_ssm`). A case that fails registration is named
with the reason and left out, never silently included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.shape.model import ShapeModel, build_ssm
from fedsim_app.shape.register import RegisterConfig, register_labels

MIN_SHAPES = 3
DEFAULT_CONFIG = RegisterConfig()


@dataclass(frozen=True)
class CaseReport:
    """One label map's registration: kept, or skipped with the reason."""

    path: str
    ok: bool
    reason: str | None = None
    registration: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "reason": self.reason,
                **self.registration}


def label_files(root: str | Path) -> tuple[list[Path], object]:
    """The label maps of a dataset (any layout :mod:`fedsim_app.io` reads) and the code set
    its dataset.json declares (None when it declares none).

    A folder that is no dataset layout with labels (e.g. ``fedsim ssm sample`` output)
    gives every NIfTI file below it.
    """
    from fedsim_app.io.errors import LayoutError
    from fedsim_app.io.layouts import index_dataset
    from fedsim_app.io.nifti import is_nifti_name

    root = Path(root)
    try:
        index = index_dataset(root)
        files, declared = [c.label for c in index.cases if c.label is not None], index.label_codes
    except LayoutError:
        if not root.is_dir():
            raise
        files, declared = [], None
    if not files and root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and is_nifti_name(p.name))
    if not files:
        raise FedSimError(f"{root}: no label maps found — point to a dataset folder "
                          "(pairs *_label.nii.gz, nnU-Net labelsTr, MSD) or a folder of "
                          ".nii.gz label maps")
    return files, declared


def dataset_codes(files: list[Path], spec=None, declared=None):
    """The code set of all files: given, declared by dataset.json, or detected from the
    union of their values (an ambiguous union asks for ``--label-codes``)."""
    from fedsim_app.io.labels import detect_code_set, get_code_set
    from fedsim_app.io.nifti import read_nifti

    if spec is not None:
        return get_code_set(spec)
    if declared is not None:
        return get_code_set(declared)
    values: set[int] = set()
    for path in files:
        values |= {int(v) for v in np.unique(read_nifti(path, kind="label").array)}
    return detect_code_set(values, path=files[0].parent)


def register_dataset(model: ShapeModel, files: list[Path], codes,
                     cfg: RegisterConfig = DEFAULT_CONFIG,
                     log: Callable[[str], None] = print) -> tuple[list[np.ndarray], list]:
    """Register every file; returns the kept vertex sets (V, 3) and one report per file."""
    from fedsim_app.io.dataset import read_label

    return register_each(model, [(str(p), lambda p=p: read_label(p, codes)) for p in files],
                         cfg, log)


def register_each(model: ShapeModel, items, cfg: RegisterConfig = DEFAULT_CONFIG,
                  log: Callable[[str], None] = print) -> tuple[list[np.ndarray], list]:
    """Register label volumes given as ``(name, read)`` pairs (``read()`` gives a label
    :class:`~fedsim_app.io.volume.Volume` in internal codes); returns the kept vertex sets
    (V, 3), each centred on the model's centre, and one report per item."""
    kept, reports = [], []
    for name, read in items:
        try:
            vol = read()
            reg = register_labels(model, vol.array, vol.grid, cfg)
        except FedSimError as exc:  # DataError included: named, skipped, never a traceback
            reports.append(CaseReport(name, False, str(exc)))
            log(f"skipped {name}: {exc}")
            continue
        summary = reg.to_dict()
        if reg.failure is not None:
            reports.append(CaseReport(name, False, reg.failure, summary))
            log(f"skipped {name}: {reg.failure}")
            continue
        # the scan's frame is arbitrary: centre every heart on the template's centre
        verts = reg.vertices - reg.vertices.mean(0) + np.asarray(model.center_mm)
        kept.append(verts)
        reports.append(CaseReport(name, True, None, summary))
        log(f"registered {name}: mean Dice {reg.mean_dice:.3f}, binary IoU "
            f"{reg.binary_iou:.3f} ({reg.seconds:.1f} s)")
    return kept, reports


def ssm_of_registered(shapes: list[np.ndarray], template: ShapeModel, *,
                      with_atlas: bool = False, where: str = "the label maps") -> ShapeModel:
    """The SSM of registered hearts, optionally with the template's own population added
    (:meth:`ShapeModel.population`: shapes with its mean and covariance, so the new
    model spans the template's variation as well as the new hearts)."""
    shapes = list(shapes)
    needed = 1 if with_atlas else MIN_SHAPES
    if len(shapes) < needed:
        raise FedSimError(f"{where}: {len(shapes)} heart(s) registered, an SSM "
                          f"{'with the atlas ' if with_atlas else ''}needs at least {needed} "
                          "— see the skipped cases above")
    if with_atlas:
        shapes += list(template.population())
    return build_ssm(np.stack(shapes), template.topology, template.ranges)


def build_from_labels(root: str | Path, label_codes=None, *, with_atlas: bool = False,
                      template: ShapeModel | None = None,
                      cfg: RegisterConfig = DEFAULT_CONFIG,
                      log: Callable[[str], None] = print) -> tuple[ShapeModel, list]:
    """Register every label map under ``root`` and build an SSM from the registered hearts.

    Parameters
    ----------
    root : dataset folder (pairs, nnU-Net v2, MSD) or a folder of label maps
    label_codes : code set name or mapping .json (default: declared, else detected)
    with_atlas : add the template's population (the atlas SSM's: 20 shapes with its mean
        and covariance) to the training shapes
    template : model whose template (topology, fit) registers the hearts (default:
        the shipped atlas SSM)

    Returns
    -------
    (model, reports): the new :class:`ShapeModel` and one :class:`CaseReport` per file.
    """
    from fedsim_app.shape.atlas import load_atlas_ssm

    template = load_atlas_ssm() if template is None else template
    files, declared = label_files(root)
    codes = dataset_codes(files, label_codes, declared)
    shapes, reports = register_dataset(template, files, codes, cfg, log)
    return ssm_of_registered(shapes, template, with_atlas=with_atlas, where=str(root)), reports
