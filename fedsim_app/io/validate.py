"""Check a dataset (any layout) or one NIfTI file and list every problem found.

Each file is checked on its own and every exception is caught per file, so one bad
file never hides the others and never ends in a traceback.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fedsim_app.io.dataset import DEFAULT_AFFINE_TOL_MM, check_pair
from fedsim_app.io.errors import DataError, EmptyLabelError, LabelCodesError
from fedsim_app.io.labels import CODE_SETS, CodeSet, detect_code_set, get_code_set, to_internal
from fedsim_app.io.layouts import index_dataset
from fedsim_app.io.nifti import DEFAULT_MAX_VOXELS, read_nifti, recorded_label_codes


@dataclass(frozen=True)
class Problem:
    """One problem: the file, the check that failed (error class name) and the message."""

    path: str
    error: str
    message: str

    def line(self) -> str:
        message = " ".join(self.message.split())  # one line, whatever the exception held
        return f"{self.path}: [{self.error}] {message}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ValidationReport:
    root: str
    layout: str | None
    n_cases: int
    label_codes: str | None  # name of the code set used (None: unknown)
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"root": self.root, "layout": self.layout, "n_cases": self.n_cases,
                "label_codes": self.label_codes, "ok": self.ok,
                "problems": [p.to_dict() for p in self.problems],
                "warnings": list(self.warnings)}


def _problem(exc: BaseException, fallback: Path | None) -> Problem:
    if isinstance(exc, DataError):
        path = exc.path if exc.path is not None else fallback
        text = exc.problem + (f" — {exc.hint}" if exc.hint else "")
        return Problem(str(path), type(exc).__name__, text)
    return Problem(str(fallback), type(exc).__name__, f"unexpected error: {exc}")


def validate_path(path: str | Path, label_codes: str | Path | CodeSet | None = None, *,
                  max_voxels: int = DEFAULT_MAX_VOXELS,
                  affine_tol_mm: float = DEFAULT_AFFINE_TOL_MM) -> ValidationReport:
    """Check every file of a dataset or a single NIfTI file.

    Parameters
    ----------
    path : dataset folder (pairs, nnU-Net v2, MSD), its dataset.json, or one NIfTI file
    label_codes : code set name or mapping .json; None: from dataset.json, else detected
        from the union of the label values (ambiguity is reported as one problem)

    Returns
    -------
    ValidationReport; ``report.ok`` is True when nothing was found.
    """
    path = Path(path)
    problems: list[Problem] = []
    caught: list[str] = []
    try:
        index = index_dataset(path)
    except Exception as exc:  # noqa: BLE001 - report, never raise
        return ValidationReport(str(path), None, 0, None, (_problem(exc, path),))
    problems += [_problem(p, path) for p in index.problems]

    codes: CodeSet | None = None
    spec = label_codes if label_codes is not None else index.label_codes
    if spec is not None:
        try:
            codes = get_code_set(spec)
        except Exception as exc:  # noqa: BLE001
            problems.append(_problem(exc, path))
            spec = None

    images, labels = {}, {}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for case in index.cases:
            for kind, file, table in (("image", case.image, images),
                                      ("label", case.label, labels)):
                if file is None:
                    continue
                try:
                    table[case.case_id] = read_nifti(file, kind=kind, max_voxels=max_voxels)
                except Exception as exc:  # noqa: BLE001
                    problems.append(_problem(exc, file))
        if codes is None and spec is None and labels:
            codes = _recorded_codes(index)
        if codes is None and spec is None and labels:
            files = {case.label: {int(v) for v in np.unique(labels[case.case_id].array)}
                     for case in index.cases if case.case_id in labels}
            codes, found = _detect_per_file(files, index.root)
            problems += found
        for case in index.cases:
            label = labels.get(case.case_id)
            if label is None:
                continue
            try:
                if not label.array.any():
                    raise EmptyLabelError(case.label, "label map holds background only",
                                          "remove the case or supply its segmentation")
                if codes is not None:
                    to_internal(label.array, codes, path=case.label)
                if case.case_id in images:
                    check_pair(images[case.case_id], label, affine_tol_mm=affine_tol_mm)
            except Exception as exc:  # noqa: BLE001
                problems.append(_problem(exc, case.label))
        caught = [str(w.message) for w in seen]
    return ValidationReport(str(path), index.layout, len(index.cases),
                            None if codes is None else codes.name, tuple(problems),
                            tuple(caught))


def _detect_per_file(files: dict, root: Path) -> tuple[CodeSet | None, list[Problem]]:
    """Detect the dataset's code set; name every file whose values fall outside it.

    The union of all values decides when one set fits it. When none does, the set(s)
    fitting the most files are taken as the dataset's: a unique one becomes the code set
    (the per-file check then names each stray file); several (e.g. any subset of 0..7)
    leave the dataset ambiguous, and each file outside all of them is named here.
    """
    union = set().union(*files.values())
    try:
        return detect_code_set(union, path=root), []
    except LabelCodesError as exc:
        union_problem = _problem(exc, root)
    fits = {name: [f for f, vals in files.items() if vals - {0} <= cs.codes]
            for name, cs in CODE_SETS.items()}
    best = max(len(v) for v in fits.values())
    if best == 0 or best == len(files):
        return None, [union_problem]  # no file fits anything, or ambiguity alone
    leaders = [name for name, hit in fits.items() if len(hit) == best]
    if len(leaders) == 1:
        return CODE_SETS[leaders[0]], []
    allowed = set().union(*(CODE_SETS[n].codes for n in leaders))
    problems = [Problem(str(root), "LabelCodesError",
                        f"most label files fit several code sets ({', '.join(leaders)}) — "
                        "pass --label-codes NAME (or a mapping .json) to say which")]
    for path, vals in files.items():
        stray = sorted(vals - allowed)
        if stray:
            problems.append(Problem(str(path), "LabelValueError",
                                    f"label values {stray[:10]} are in none of the code sets "
                                    f"the other files fit ({', '.join(leaders)}) — fix the "
                                    "file or pass the right --label-codes"))
    return None, problems


def _recorded_codes(index) -> CodeSet | None:
    """The code set FedSim recorded in every label header (its own outputs), else None."""
    names = set()
    for case in index.cases:
        if case.label is not None:
            try:
                names.add(recorded_label_codes(case.label))
            except Exception:  # noqa: BLE001 - unreadable files are reported elsewhere
                names.add(None)
    if len(names) != 1 or None in names:
        return None
    try:
        return get_code_set(names.pop())
    except Exception:  # noqa: BLE001 - a foreign description: fall back to detection
        return None
