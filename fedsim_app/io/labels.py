"""Label code sets of public datasets, mapped to the internal codes at the io boundary.

Internal codes (:mod:`fedsim_app.io.labels_core`): 0 background, 1 LV blood pool,
2 LV myocardium, 3 RV, 4 LA, 5 RA, 6 aorta, 7 pulmonary artery.

Named code sets (``--label-codes NAME``):

- ``internal``: the codes above.
- ``mmwhs``: MM-WHS 2017 grey values 500 LV, 205 myocardium, 600 RV, 420 LA (some
  files also use 421 for the LA; read as LA, written back as 420), 550 RA, 820 aorta,
  850 pulmonary artery.
- ``mmwhs-consecutive``: the MM-WHS codes sorted and numbered 1..7 (what most nnU-Net
  conversions of MM-WHS use): 1 myocardium, 2 LA, 3 LV, 4 RA, 5 RV, 6 aorta, 7 PA.
- ``imagechd``: ImageCHD (Xu et al., "ImageCHD: a 3D computed tomography image dataset
  for classification of congenital heart disease", MICCAI 2020, arXiv:2101.10799) as
  released with the dataset: 1 LV, 2 RV, 3 LA, 4 RA, 5 myocardium, 6 aorta,
  7 pulmonary artery. Its files may carry further classes (codes > 7, e.g. vessels
  specific to a CHD type); they have no internal structure and are read as background
  with a warning. The order is the one stated in the FedSim issue for the published
  release; check it against the dataset's own README when you use new files.

A JSON file gives any other mapping: ``{"500": "lv_blood_pool", "205": 2, ...}``
(file code → internal name or code) or nnU-Net style ``{"background": 0,
"lv_blood_pool": 1, ...}`` (internal name → file code).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedsim_app.io.errors import LabelCodesError, LabelValueError
from fedsim_app.io.labels_core import BACKGROUND, LABEL_OF, NAME_OF


class ExtraLabelWarning(UserWarning):
    """Codes with no internal structure (e.g. extra ImageCHD classes) were set to background."""


@dataclass(frozen=True)
class CodeSet:
    """A dataset's label codes and their internal equivalents.

    Parameters
    ----------
    name : the name users pass to ``--label-codes`` (or the JSON file's path)
    to_internal : file code → internal code (background 0 → 0 is implied)
    from_internal : internal code → file code used when writing
    extra_codes_to_background : codes above the mapped ones are read as background
        with a warning instead of being an error (ImageCHD)
    """

    name: str
    to_internal: Mapping[int, int]
    from_internal: Mapping[int, int] = field(default_factory=dict)
    extra_codes_to_background: bool = False

    def __post_init__(self) -> None:
        to_int = {int(k): int(v) for k, v in self.to_internal.items()}
        to_int.setdefault(BACKGROUND, BACKGROUND)
        inverse = {int(k): int(v) for k, v in self.from_internal.items()}
        for code, internal in sorted(to_int.items()):
            inverse.setdefault(internal, code)  # first (smallest) code wins: 420 before 421
        object.__setattr__(self, "to_internal", to_int)
        object.__setattr__(self, "from_internal", inverse)

    @property
    def codes(self) -> frozenset[int]:
        return frozenset(self.to_internal)

    def names(self) -> dict[str, int]:
        """Structure name → file code (nnU-Net ``labels`` form), background first."""
        out = {"background": self.from_internal.get(BACKGROUND, 0)}
        for internal, name in NAME_OF.items():
            if internal in self.from_internal:
                out[name] = self.from_internal[internal]
        return out


_MMWHS = {500: 1, 205: 2, 600: 3, 420: 4, 421: 4, 550: 5, 820: 6, 850: 7}
CODE_SETS: dict[str, CodeSet] = {
    "internal": CodeSet("internal", {i: i for i in NAME_OF}),
    "mmwhs": CodeSet("mmwhs", _MMWHS),
    # sorted MM-WHS codes 205, 420, 500, 550, 600, 820, 850 numbered 1..7
    "mmwhs-consecutive": CodeSet("mmwhs-consecutive", {1: 2, 2: 4, 3: 1, 4: 5, 5: 3, 6: 6, 7: 7}),
    # ImageCHD: 1 LV, 2 RV, 3 LA, 4 RA, 5 myocardium, 6 aorta, 7 PA (see module docstring)
    "imagechd": CodeSet("imagechd", {1: 1, 2: 3, 3: 4, 4: 5, 5: 2, 6: 6, 7: 7},
                        extra_codes_to_background=True),
}


def get_code_set(spec: str | Path | CodeSet) -> CodeSet:
    """A code set from its name, a JSON mapping file, or a :class:`CodeSet`.

    Raises
    ------
    LabelCodesError
        For an unknown name or a malformed JSON file (named).
    """
    if isinstance(spec, CodeSet):
        return spec
    text = str(spec)
    if text.lower() in CODE_SETS:
        return CODE_SETS[text.lower()]
    path = Path(text)
    if path.suffix.lower() != ".json":
        raise LabelCodesError(None, f"unknown label code set {text!r}",
                              f"use one of {', '.join(CODE_SETS)} or a mapping .json file")
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LabelCodesError(path, "label mapping file not found", "check the path") from exc
    except (OSError, ValueError) as exc:
        raise LabelCodesError(path, f"cannot read the label mapping as JSON ({exc})",
                              'write it as {"500": "lv_blood_pool", ...}') from exc
    return code_set_from_mapping(mapping, name=str(path), path=path)


def code_set_from_mapping(mapping: Mapping, *, name: str = "custom",
                          path: Path | None = None) -> CodeSet:
    """Build a code set from ``{file_code: internal name|code}`` or ``{name: file_code}``."""
    if isinstance(mapping, Mapping) and isinstance(mapping.get("labels"), Mapping):
        mapping = mapping["labels"]
    if not isinstance(mapping, Mapping) or not mapping:
        raise LabelCodesError(path, "label mapping must be a non-empty JSON object",
                              'write it as {"500": "lv_blood_pool", ...}')
    to_internal: dict[int, int] = {}
    try:
        if all(_is_int(k) for k in mapping):  # file code → internal name or code
            for code, target in mapping.items():
                to_internal[int(code)] = _internal_code(target)
        else:  # internal name → file code (nnU-Net "labels")
            for target, code in mapping.items():
                to_internal[int(code)] = _internal_code(target)
    except (KeyError, ValueError, TypeError) as exc:
        raise LabelCodesError(path, f"label mapping entry not understood: {exc}",
                              "targets are internal names (" + ", ".join(LABEL_OF)
                              + ", background) or codes 0..7") from exc
    return CodeSet(name, to_internal)


def _is_int(text) -> bool:
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return not isinstance(text, bool)


def _internal_code(target) -> int:
    if isinstance(target, str) and not _is_int(target):
        key = target.strip().lower().replace(" ", "_").replace("-", "_")
        if key == "background":
            return BACKGROUND
        if key not in LABEL_OF:
            raise KeyError(target)
        return LABEL_OF[key]
    code = int(target)
    if code != BACKGROUND and code not in NAME_OF:
        raise ValueError(f"internal code {code} is not in 0..7")
    return code


def to_internal(labels: np.ndarray, codes: str | Path | CodeSet, *,
                path: str | Path | None = None) -> np.ndarray:
    """Map a label array from a dataset's codes to internal codes (uint8, same shape).

    Raises
    ------
    LabelValueError
        Naming ``path`` and the unexpected values.
    """
    cs = get_code_set(codes)
    values = np.unique(labels)
    known = cs.codes
    unknown = [int(v) for v in values if int(v) not in known]
    if unknown and cs.extra_codes_to_background and min(unknown) > max(known):
        warnings.warn(f"{path}: codes {unknown} have no internal structure in {cs.name}; "
                      "read as background", ExtraLabelWarning, stacklevel=2)
    elif unknown:
        raise LabelValueError(path, f"label values {unknown[:10]} are not in the {cs.name!r} "
                              f"code set {sorted(known)}", "pass the right --label-codes "
                              "(a name or a mapping .json)")
    return _apply_lut(labels, values, {**dict.fromkeys(unknown, BACKGROUND), **cs.to_internal},
                      np.uint8)


def from_internal(labels: np.ndarray, codes: str | Path | CodeSet) -> np.ndarray:
    """Map internal codes to a dataset's codes (uint8 when they fit, else int16)."""
    cs = get_code_set(codes)
    values = np.unique(labels)
    missing = [int(v) for v in values if int(v) not in cs.from_internal]
    if missing:
        raise LabelValueError(None, f"internal labels {missing} have no code in {cs.name!r}",
                              "add them to the mapping")
    dtype = np.uint8 if max(cs.from_internal.values()) < 256 else np.int16
    return _apply_lut(labels, values, cs.from_internal, dtype)


def _apply_lut(labels: np.ndarray, values: np.ndarray, table: Mapping[int, int], dtype):
    # values are sorted (np.unique); searchsorted gives each voxel its value's index
    if values.size == 0:
        return np.zeros(labels.shape, dtype)
    targets = np.array([table[int(v)] for v in values], dtype=dtype)
    if values[0] >= 0 and values[-1] < 65536:  # small codes: a direct lookup table is fastest
        lut = np.zeros(int(values[-1]) + 1, dtype)
        lut[values.astype(np.int64)] = targets
        return lut[labels]
    return targets[np.searchsorted(values, labels)]


def detect_code_set(values: Iterable[int], *, path: str | Path | None = None) -> CodeSet:
    """Guess the code set from the values found, where only one set fits.

    Raises
    ------
    LabelCodesError
        When values fit several sets (any subset of 0..7 is internal, mmwhs-consecutive
        or imagechd) or none; the message asks for ``--label-codes``.
    """
    found = {int(v) for v in values} - {BACKGROUND}
    if not found:
        raise LabelCodesError(path, "label map holds background only; its code set cannot "
                              "be detected", "pass --label-codes")
    fits = [cs for cs in CODE_SETS.values() if found <= cs.codes]
    if len(fits) == 1:
        return fits[0]
    listed = sorted(found)[:10]
    if fits:
        raise LabelCodesError(path, f"label values {listed} fit several code sets "
                              f"({', '.join(cs.name for cs in fits)})",
                              "pass --label-codes NAME (or a mapping .json) to say which")
    raise LabelCodesError(path, f"label values {listed} match no known code set",
                          f"pass --label-codes with a mapping .json (known sets: "
                          f"{', '.join(CODE_SETS)})")
