"""Write a dataset in nnU-Net v2 raw layout whose dataset.json MONAI reads too.

Layout::

    root/
      dataset.json            nnU-Net v2 keys + MSD keys (training list, modality, ...)
      imagesTr/<case>_0000.nii.gz
      labelsTr/<case>.nii.gz
      fedsim/<case>.json      the case record (:class:`fedsim_app.io.records.Record`);
                              written last, so it marks a finished case

``dataset.json`` keeps nnU-Net's ``labels`` form (name → code), which nnU-Net requires;
MONAI's ``load_decathlon_datalist`` reads only the ``training`` list, so both tools
accept the same file. nnU-Net wants consecutive label codes: write with
``label_codes="internal"`` (default) or ``"mmwhs-consecutive"`` for nnU-Net training.
Every file is written atomically; an interrupted run leaves finished cases, which
:meth:`DatasetWriter.has_case` reports so a resumed run skips them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from fedsim_app.io.atomic import check_writable, remove_stale_temps, write_json_atomic
from fedsim_app.io.dataset import check_pair
from fedsim_app.io.labels import CODE_SETS, CodeSet, from_internal, get_code_set
from fedsim_app.io.nifti import write_nifti
from fedsim_app.io.volume import Volume

FILE_ENDING = ".nii.gz"
RECORD_DIR = "fedsim"
FORMAT_VERSION = 1


class DatasetWriter:
    """Write cases one by one, then ``finalize()`` the dataset.json.

    Parameters
    ----------
    root : output folder (created; UnwritableError when it cannot be written)
    name : dataset name (``name`` in dataset.json)
    label_codes : code set the label files are written in (internal labels are mapped)
    description, modality : dataset.json fields
    orientation : axis codes of the written files (``"RAS"``)
    image_hu_int16 : store images as int16 HU (rounded to 1 HU, no scaling) instead of
        float32: what nnU-Net and MONAI read, half the size, exact to 1 HU

    Examples
    --------
    >>> w = DatasetWriter(tmp, "FedSimSiteA", label_codes="internal")   # doctest: +SKIP
    >>> if not w.has_case("case_000"):
    ...     w.add_case("case_000", image, label, record={"seed": 0})
    >>> w.finalize()
    """

    def __init__(self, root: str | Path, name: str, *, label_codes: str | Path | CodeSet =
                 "internal", description: str = "", modality: str = "CT",
                 orientation: str = "RAS", image_hu_int16: bool = False) -> None:
        self.root = check_writable(root)
        for sub, deep in (("imagesTr", False), ("labelsTr", False), (RECORD_DIR, True)):
            remove_stale_temps(self.root / sub, recursive=deep)  # a killed run's half files
        self.image_hu_int16 = image_hu_int16
        self.name = name
        self.codes = get_code_set(label_codes)
        self.description = description
        self.modality = modality
        self.orientation = orientation
        if sorted(self.codes.names().values()) != list(range(len(self.codes.names()))):
            warnings.warn(f"label codes {self.codes.name!r} are not consecutive; nnU-Net "
                          "refuses such datasets (MONAI reads them)", UserWarning, stacklevel=2)

    def image_path(self, case_id: str) -> Path:
        return self.root / "imagesTr" / f"{case_id}_0000{FILE_ENDING}"

    def label_path(self, case_id: str) -> Path:
        return self.root / "labelsTr" / f"{case_id}{FILE_ENDING}"

    def record_path(self, case_id: str) -> Path:
        return self.root / RECORD_DIR / f"{case_id}.json"

    def has_case(self, case_id: str) -> bool:
        """True when the case was finished (its record, written last, exists)."""
        return (self.record_path(case_id).is_file() and self.image_path(case_id).is_file()
                and self.label_path(case_id).is_file())

    def finished_cases(self) -> list[str]:
        """Ids of finished cases on disk, this run's and earlier runs'."""
        folder = self.root / RECORD_DIR
        if not folder.is_dir():
            return []
        ids = (p.stem for p in folder.glob("*.json") if not p.name.startswith("."))
        return sorted(i for i in ids if self.has_case(i))

    def add_case(self, case_id: str, image: Volume, label: Volume,
                 record: dict | None = None, *, kind: str = "dataset-case") -> Path:
        """Write one case (image, label in the writer's codes, record); returns the record path.

        ``label`` holds internal codes. Image and label must share a grid. The case file
        is a :class:`~fedsim_app.io.records.Record` of ``kind`` whose ``record`` field
        holds ``record``.
        """
        from fedsim_app.io.records import Record, write_record

        if not case_id or "/" in case_id or case_id.startswith("."):
            raise ValueError(f"case id {case_id!r} must be a plain file name")
        check_pair(image, label)
        # overwriting a finished case: unmark it first so a crash cannot leave it marked
        self.record_path(case_id).unlink(missing_ok=True)
        labels_out = label.with_array(from_internal(label.array, self.codes), kind="label")
        if self.image_hu_int16:
            image = image.with_array(hu_int16(image.array))
        write_nifti(image, self.image_path(case_id), orientation=self.orientation,
                    dtype=np.int16 if self.image_hu_int16 else None)
        write_nifti(labels_out, self.label_path(case_id), orientation=self.orientation,
                    label_codes=self.codes.name if self.codes.name in CODE_SETS else None)
        meta = {"case_id": case_id,
                "image": self.image_path(case_id).relative_to(self.root).as_posix(),
                "label": self.label_path(case_id).relative_to(self.root).as_posix(),
                "label_codes": self._codes_key(), "shape_zyx": list(image.shape),
                "spacing_mm_zyx": list(image.spacing_mm), "record": record or {}}
        return write_record(self.record_path(case_id), Record(kind, meta))

    def dataset_json(self) -> dict:
        """The dataset.json content for the finished cases on disk."""
        cases = self.finished_cases()
        names = self.codes.names()
        training = [{"image": f"./imagesTr/{c}_0000{FILE_ENDING}",
                     "label": f"./labelsTr/{c}{FILE_ENDING}"} for c in cases]
        return {
            # nnU-Net v2
            "channel_names": {"0": self.modality},
            "labels": names,
            "numTraining": len(cases),
            "file_ending": FILE_ENDING,
            # Medical Segmentation Decathlon / MONAI
            "name": self.name,
            "description": self.description,
            "modality": {"0": self.modality},
            "tensorImageSize": "3D",
            "numTest": 0,
            "training": training,
            "test": [],
            # FedSim
            "fedsim_label_codes": self._codes_key(),
            "fedsim_format_version": FORMAT_VERSION,
        }

    def _codes_key(self) -> str | dict:
        # a built-in set by name; a custom one as its mapping, so the dataset stays readable
        # when the mapping file is gone
        if self.codes.name in CODE_SETS:
            return self.codes.name
        return {str(k): v for k, v in self.codes.to_internal.items()}

    def finalize(self) -> Path:
        """Write dataset.json atomically (call again after resuming); returns its path."""
        return write_json_atomic(self.root / "dataset.json", self.dataset_json())


def hu_int16(hu: np.ndarray) -> np.ndarray:
    """HU rounded to the nearest integer and clipped to int16 (exact to 1 HU)."""
    info = np.iinfo(np.int16)
    return np.clip(np.rint(hu), info.min, info.max).astype(np.int16)
