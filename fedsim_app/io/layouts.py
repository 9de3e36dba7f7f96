"""Dataset layouts FedSim reads, detected automatically.

- ``pairs``: a folder of MM-WHS-style pairs ``<case>_image.nii.gz`` / ``<case>_label.nii.gz``
- ``nnunet``: nnU-Net v2 raw, ``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``
  and ``dataset.json`` with ``channel_names``, ``labels``, ``numTraining``, ``file_ending``
- ``msd``: Medical Segmentation Decathlon / MONAI, ``dataset.json`` whose ``training``
  list holds ``{"image": ..., "label": ...}`` paths relative to the json
- ``file``: a single NIfTI file (an image, or a label map when named ``*_label*``)

A dataset.json carrying both key sets (what :class:`~fedsim_app.io.writer.DatasetWriter`
writes) reads as ``nnunet``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fedsim_app.io.errors import LabelCodesError, LayoutError, MissingFileError, MissingImageError
from fedsim_app.io.labels import CODE_SETS, CodeSet, code_set_from_mapping
from fedsim_app.io.nifti import is_nifti_name

LAYOUTS = ("pairs", "nnunet", "msd", "file")
_PAIR_TAGS = ("_image", "_label")


@dataclass(frozen=True)
class CaseFiles:
    """One case on disk: ``image`` is None when only the label was found."""

    case_id: str
    image: Path | None
    label: Path | None


@dataclass(frozen=True)
class DatasetIndex:
    """What :func:`index_dataset` found.

    ``problems`` are layout-level :class:`DataError` instances (orphan labels, files the
    dataset.json names but that do not exist); ``label_codes`` comes from the
    dataset.json: FedSim's ``fedsim_label_codes`` key, else its ``labels`` when every name
    there is an internal structure name (``lv_blood_pool``, ...), else None.
    """

    root: Path
    layout: str
    cases: tuple[CaseFiles, ...]
    problems: tuple = ()
    label_codes: str | CodeSet | None = None
    dataset_json: dict | None = field(default=None, repr=False)

    def check(self) -> DatasetIndex:
        """Raise the first layout-level problem, if any; returns self."""
        if self.problems:
            raise self.problems[0]
        return self


def _strip_nifti(name: str) -> str:
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]


def _nifti_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and is_nifti_name(p.name))


def read_dataset_json(path: Path) -> dict:
    """The parsed dataset.json (LayoutError naming it when it is not a JSON object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LayoutError(path, f"dataset.json cannot be read as JSON ({exc})",
                          "fix or regenerate it") from exc
    if not isinstance(data, dict):
        raise LayoutError(path, "dataset.json is not a JSON object", "fix or regenerate it")
    return data


def detect_layout(path: str | Path) -> str:
    """``"file"``, ``"nnunet"``, ``"msd"`` or ``"pairs"``.

    Raises
    ------
    MissingFileError, LayoutError
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "no such file or folder", "check the path")
    if path.is_file():
        if is_nifti_name(path.name):
            return "file"
        if path.name == "dataset.json":
            return detect_layout(path.parent)
        raise LayoutError(path, "not a NIfTI file (.nii/.nii.gz) nor a dataset folder",
                          "point to a dataset folder or a NIfTI file")
    ds_json = path / "dataset.json"
    if ds_json.is_file():
        data = read_dataset_json(ds_json)
        if "channel_names" in data or ((path / "imagesTr").is_dir() and "training" not in data):
            return "nnunet"
        if isinstance(data.get("training"), list):
            return "msd"
        raise LayoutError(ds_json, "dataset.json has neither nnU-Net keys (channel_names) "
                          "nor an MSD 'training' list", "fix or regenerate it")
    if (path / "imagesTr").is_dir():
        return "nnunet"
    if any(_strip_nifti(p.name).endswith(_PAIR_TAGS) for p in _nifti_files(path)):
        return "pairs"
    raise LayoutError(path, "no dataset found: no dataset.json, imagesTr/ or "
                      "<case>_image.nii.gz / <case>_label.nii.gz pairs",
                      "point to a dataset folder in one of these layouts")


def index_dataset(path: str | Path) -> DatasetIndex:
    """List the cases of a dataset in any supported layout (detected)."""
    path = Path(path)
    layout = detect_layout(path)
    if path.is_file() and layout != "file":
        path = path.parent
    if layout == "file":
        recorded = _recorded_codes(path)  # a label map FedSim wrote says so in its header
        is_label = ("_label" in path.name or path.parent.name == "labelsTr"
                    or recorded is not None)
        case = CaseFiles(_strip_nifti(path.name), None if is_label else path,
                         path if is_label else None)
        return DatasetIndex(path, layout, (case,), label_codes=recorded)
    if layout == "pairs":
        return _index_pairs(path)
    data = read_dataset_json(path / "dataset.json") if (path / "dataset.json").is_file() else {}
    codes = data.get("fedsim_label_codes")
    if isinstance(codes, dict):  # a custom mapping FedSim wrote: file code → internal code
        try:
            codes = code_set_from_mapping(codes, name="dataset.json fedsim_label_codes")
        except LabelCodesError:
            codes = None
    if not isinstance(codes, str | CodeSet):
        codes = _codes_from_labels(data.get("labels"), path)
    if layout == "nnunet":
        return _index_nnunet(path, data, codes)
    return _index_msd(path, data, codes)


def _recorded_codes(path: Path) -> str | None:
    from fedsim_app.io.errors import DataError
    from fedsim_app.io.nifti import recorded_label_codes

    try:
        name = recorded_label_codes(path)
    except DataError:
        return None  # an unreadable file is reported when it is read
    return name if name in CODE_SETS else None


def _codes_from_labels(labels, root: Path) -> CodeSet | None:
    if not isinstance(labels, dict) or not labels:
        return None
    try:
        return code_set_from_mapping(labels, name=f"{root / 'dataset.json'} labels")
    except LabelCodesError:
        return None  # names FedSim does not know: detect from the values instead


def _orphan(label: Path, image: Path) -> MissingImageError:
    return MissingImageError(label, f"label has no image (expected {image.name})",
                             "add the image or remove the label")


def _index_pairs(root: Path) -> DatasetIndex:
    images, labels = {}, {}
    for p in _nifti_files(root):
        stem = _strip_nifti(p.name)
        for tag, table in zip(_PAIR_TAGS, (images, labels), strict=True):
            if stem.endswith(tag):
                table[stem[: -len(tag)]] = p
    cases, problems = [], []
    for case_id in sorted(set(images) | set(labels)):
        image, label = images.get(case_id), labels.get(case_id)
        if image is None:
            problems.append(_orphan(label, root / f"{case_id}_image.nii.gz"))
        cases.append(CaseFiles(case_id, image, label))
    return DatasetIndex(root, "pairs", tuple(cases), tuple(problems))


def _index_nnunet(root: Path, data: dict, codes) -> DatasetIndex:
    ending = data.get("file_ending", ".nii.gz")
    if data and "channel_names" not in data and "modality" not in data:
        problems = [LayoutError(root / "dataset.json", "nnU-Net dataset.json lacks "
                                "'channel_names'", "add it, e.g. {\"0\": \"CT\"}")]
    else:
        problems = []
    for key in ("labels", "numTraining", "file_ending"):
        if data and key not in data:
            problems.append(LayoutError(root / "dataset.json", f"nnU-Net dataset.json lacks "
                                        f"{key!r}", "add it or regenerate the file"))
    images = {}
    for p in _nifti_files(root / "imagesTr"):
        stem = _strip_nifti(p.name)
        if stem.endswith("_0000"):
            images[stem[:-5]] = p
    labels = {_strip_nifti(p.name): p for p in _nifti_files(root / "labelsTr")}
    cases = []
    for case_id in sorted(set(images) | set(labels)):
        image, label = images.get(case_id), labels.get(case_id)
        if image is None:
            problems.append(_orphan(label, root / "imagesTr" / f"{case_id}_0000{ending}"))
        cases.append(CaseFiles(case_id, image, label))
    n_train = data.get("numTraining")
    if isinstance(n_train, int) and labels and n_train != len(labels):
        problems.append(LayoutError(root / "dataset.json", f"numTraining is {n_train} but "
                                    f"labelsTr holds {len(labels)} labels",
                                    "correct numTraining"))
    return DatasetIndex(root, "nnunet", tuple(cases), tuple(problems), codes, data)


def _index_msd(root: Path, data: dict, codes) -> DatasetIndex:
    cases, problems = [], []
    for n, entry in enumerate(data.get("training", [])):
        if not isinstance(entry, dict) or "image" not in entry:
            problems.append(LayoutError(root / "dataset.json", f"training entry {n} has no "
                                        "'image'", 'each entry is {"image": ..., "label": ...}'))
            continue
        image = (root / entry["image"]).resolve()
        label = (root / entry["label"]).resolve() if entry.get("label") else None
        if not image.is_file():
            if label is not None and label.is_file():
                problems.append(_orphan(label, image))
            else:
                problems.append(MissingFileError(image, "listed in dataset.json but missing",
                                                 "add the file or remove the entry"))
            image = None
        if label is not None and not label.is_file():
            problems.append(MissingFileError(label, "listed in dataset.json but missing",
                                             "add the file or remove the entry"))
            label = None
        cases.append(CaseFiles(_strip_nifti(Path(entry["image"]).name), image, label))
    return DatasetIndex(root, "msd", tuple(cases), tuple(problems), codes, data)


def find_datasets(path: str | Path) -> list[Path]:
    """The dataset at ``path``, or else the datasets one level below it.

    A folder that is no dataset itself but holds dataset folders (what ``fedsim cohort
    --out DIR`` writes: one nnU-Net dataset per site) gives those folders, sorted.

    Raises
    ------
    MissingFileError, LayoutError
        When ``path`` is neither a dataset nor a folder of datasets (the error of
        ``path`` itself).
    """
    path = Path(path)
    try:
        detect_layout(path)
        return [path]
    except LayoutError:
        if not path.is_dir():
            raise
        found = []
        for child in sorted(p for p in path.iterdir() if p.is_dir()):
            try:
                detect_layout(child)
            except (LayoutError, MissingFileError):
                continue
            found.append(child)
        if not found:
            raise
        return found
