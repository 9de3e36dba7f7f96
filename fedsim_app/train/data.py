"""A site's training data: labelled and unlabelled volumes read from a dataset folder.

Any layout :mod:`fedsim_app.io` reads (the cohort's nnU-Net datasets, a user's MM-WHS
pairs, MSD) works. The training split is the cohort's ``fedsim_split.json`` when present,
else every case but the last fifth (sorted by id), which is held out as the test split.
The first ``n_labelled`` training cases keep their labels (the paper's label budgets:
site A 4 or 8, sites B and C 6 or 12); the rest of the training split is read as images
only. Volumes are resampled onto the model's label grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.io.dataset import load_case
from fedsim_app.io.errors import DataError
from fedsim_app.io.grid import Grid
from fedsim_app.io.layouts import index_dataset
from fedsim_app.io.nifti import read_nifti
from fedsim_app.io.resample import fit_to_frame, resample_to_grid

SPLIT_FILE = "fedsim_split.json"
LABEL_BUDGETS = {"A": (4, 8), "B": (6, 12), "C": (6, 12)}
AIR_HU = -1000.0


class TrainDataError(FedSimError):
    """A dataset that cannot be trained on; the message is ``fedsim validate``'s line."""


@dataclass(frozen=True)
class SiteData:
    """Volumes of one site on the model's grid.

    ``images`` are (N, S, S, S) float32 in hu/1000 (water 0, air -1); ``labels`` are
    (N_labelled, S, S, S) int64 internal codes for the first ``n_labelled`` images;
    ``fov_mm`` each scan's field of view as on disk (its longest extent, mm).
    """

    case_ids: tuple[str, ...]
    images: torch.Tensor
    labels: torch.Tensor
    grid: Grid
    fov_mm: tuple[float, ...] = ()

    def to(self, device) -> SiteData:
        """The same volumes on ``device``."""
        return SiteData(self.case_ids, self.images.to(device), self.labels.to(device),
                        self.grid, self.fov_mm)

    @property
    def n_labelled(self) -> int:
        return len(self.labels)

    @property
    def n_unlabelled(self) -> int:
        return len(self.images) - len(self.labels)


def _problem_line(exc: DataError) -> str:
    # the same text `fedsim validate` prints for this problem
    text = " ".join((exc.problem + (f" — {exc.hint}" if exc.hint else "")).split())
    return f"{exc.path}: [{type(exc).__name__}] {text}"


def split_cases(root: str | Path) -> dict[str, list]:
    """``{"train": [CaseFiles...], "test": [...]}`` of a dataset folder."""
    try:
        index = index_dataset(root).check()
    except DataError as exc:
        raise TrainDataError(_problem_line(exc)) from None
    by_id = {c.case_id: c for c in index.cases}
    split_path = Path(index.root) / SPLIT_FILE
    if split_path.is_file():
        try:
            split = json.loads(split_path.read_text())
            return {k: [by_id[i] for i in split.get(k, [])] for k in ("train", "test")}
        except (ValueError, KeyError) as exc:
            raise TrainDataError(f"{split_path}: [SplitError] cannot use the split ({exc}) — "
                                 "fix or delete the file") from None
    ids = sorted(by_id)
    n_test = max(1, len(ids) // 5) if len(ids) > 1 else 0
    return {"train": [by_id[i] for i in ids[: len(ids) - n_test]],
            "test": [by_id[i] for i in ids[len(ids) - n_test:]]}


def _framed(volume, grid: Grid, frame: str):
    return fit_to_frame(volume, grid) if frame == "case" else volume


def _read(case, grid: Grid, with_label: bool, frame: str, subset: str = "train"):
    try:
        if with_label:
            image, label = load_case(case)
            if label is None and subset == "test":
                raise DataError(case.image, "this test case has no label (the held-out "
                                "figures need one)", f"add its label or list the case "
                                f"elsewhere in {SPLIT_FILE}")
            if label is None:
                raise DataError(case.image, "this labelled training case has no label",
                                "add its label or lower --labels")
            label = resample_to_grid(_framed(label, grid, frame), grid).array.astype(np.int64)
        else:
            image, label = read_nifti(case.image, kind="image"), None
    except DataError as exc:
        raise TrainDataError(_problem_line(exc)) from None
    fov = float(max(image.grid.extent_mm))
    image = resample_to_grid(_framed(image, grid, frame), grid,
                             fill_value=AIR_HU).array.astype(np.float32)
    return image / 1000.0, label, fov


def scan_grid(frame: Grid, fov_mm) -> Grid:
    """``frame`` at the typical scan's size: for a model trained with ``frame = "case"``,
    where its volumes stand in millimetres. ``fov_mm``: the training scans' fields of
    view (:attr:`SiteData.fov_mm`); their median is the frame's new extent."""
    fov = float(np.median(np.asarray(fov_mm, dtype=float)))
    return Grid.centered(frame.shape, fov / frame.shape[0],
                         tuple(float(c) for c in frame.center_mm))


def labelled_label_readers(root: str | Path, n_labelled: int, frame: Grid | None = None
                           ) -> list[tuple[str, object]]:
    """``(file, read)`` for the labels of the first ``n_labelled`` training cases (those
    :func:`load_site_data` keeps labelled), ``read()`` giving the internal-coded label
    volume at its own resolution (building a shape model registers those); with
    ``frame``, moved and scaled onto it as ``frame = "case"`` loads them
    (:func:`~fedsim_app.io.fit_to_frame`)."""
    from fedsim_app.io.dataset import read_label

    def reader(case):
        def read():
            if case.label is None:
                raise DataError(case.image, "this labelled training case has no label",
                                "add its label or lower --labels")
            label = read_label(case.label, None)
            return label if frame is None else fit_to_frame(label, frame)
        return read

    return [(str(c.label or c.image), reader(c))
            for c in split_cases(root)["train"][:n_labelled]]


def load_site_data(root: str | Path, grid: Grid, *, n_labelled: int, subset: str = "train",
                   frame: str = "fixed") -> SiteData:
    """Read a site's ``subset`` ("train" or "test") onto ``grid``.

    In "train", the first ``n_labelled`` cases are labelled and the rest image-only; in
    "test" every case is read with its label. ``frame`` (a
    :class:`~fedsim_app.train.config.TrainConfig` setting): "fixed" resamples each volume
    onto ``grid`` in millimetres, "case" scales its own field of view onto ``grid`` first.
    """
    cases = split_cases(root)[subset]
    if subset == "test":
        n_labelled = len(cases)
    if not cases:
        raise TrainDataError(f"{root}: [SplitError] no {subset} cases — add cases or a "
                             f"{SPLIT_FILE} that lists some")
    if n_labelled < 1 or n_labelled > len(cases):
        raise TrainDataError(f"{root}: [LabelBudgetError] {n_labelled} labelled cases asked "
                             f"for, the {subset} split has {len(cases)} — choose 1..{len(cases)}")
    images, labels, fovs = [], [], []
    for i, case in enumerate(cases):
        image, label, fov = _read(case, grid, with_label=i < n_labelled, frame=frame,
                                  subset=subset)
        images.append(image)
        fovs.append(fov)
        if label is not None:
            labels.append(label)
    return SiteData(tuple(c.case_id for c in cases), torch.from_numpy(np.stack(images)),
                    torch.from_numpy(np.stack(labels)), grid, tuple(fovs))
