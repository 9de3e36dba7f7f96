"""One versioned record type for every FedSim output, and its one writer.

Every JSON record FedSim writes beside its data (an exported case, a cohort case, a
sampled heart, the Explorer's sample) is a :class:`Record`: a header that says what it
is (``format``, ``format_version``, ``kind``, ``fedsim_version``) followed by the kind's
fields. A user reads every output the same way::

    {"format": "fedsim-record", "format_version": 1, "kind": "export-case",
     "fedsim_version": "0.1.0", ...fields...}

This module depends only on the standard library and :mod:`fedsim_app.io.atomic`: it
sits in ``io`` so the dataset writer, the cohort and the export all write records without
any layer importing one above it.

Examples
--------
>>> rec = Record("shape-sample", {"seed": 0, "params": [0.0] * 21})
>>> rec.to_dict()["kind"], rec["seed"]
('shape-sample', 0)
>>> write_record("out/params.json", rec)                      # doctest: +SKIP
>>> read_record("out/params.json").kind                       # doctest: +SKIP
'shape-sample'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fedsim_app.errors import FedSimError

FORMAT = "fedsim-record"
FORMAT_VERSION = 1
#: the kinds of record FedSim writes (readers may meet others from newer versions)
KINDS = ("export-case", "export-summary", "cohort-case", "dataset-case", "shape-sample",
         "explorer-sample")
HEADER = ("format", "format_version", "kind", "fedsim_version")


class RecordError(FedSimError):
    """A record file that cannot be read (missing, not JSON, not a FedSim record)."""


def _version() -> str:
    from fedsim_app import __version__

    return __version__


@dataclass(frozen=True)
class Record:
    """A FedSim record: ``kind`` and its JSON-able ``fields``.

    Parameters
    ----------
    kind : what the record describes (one of :data:`KINDS`)
    fields : the kind's content; keys must not repeat the header's
    fedsim_version : the software that wrote it (default: this one)
    format_version : the record format (default: this module's)
    """

    kind: str
    fields: dict
    fedsim_version: str = field(default_factory=_version)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        clash = sorted(set(self.fields) & set(HEADER))
        if clash:
            raise ValueError(f"record fields {clash} clash with the record header")

    def __getitem__(self, key: str):
        return self.fields[key]

    def get(self, key: str, default=None):
        return self.fields.get(key, default)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": self.format_version, "kind": self.kind,
                "fedsim_version": self.fedsim_version, **self.fields}

    @classmethod
    def from_dict(cls, data: dict, *, source: str | Path = "record") -> Record:
        """The record of a dict written by :meth:`to_dict`.

        Raises
        ------
        RecordError
            naming ``source`` when ``data`` is not a FedSim record of a readable version.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RecordError(f"{source}: not a FedSim record (no \"format\": \"{FORMAT}\")")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise RecordError(f"{source}: record format version {version!r}; this FedSim "
                              f"reads up to {FORMAT_VERSION} — update FedSim to read it")
        rest = {k: v for k, v in data.items() if k not in HEADER}
        return cls(str(data.get("kind", "")), rest, str(data.get("fedsim_version", "")),
                   version)


def write_record(path: str | Path, record: Record) -> Path:
    """Write ``record`` as indented JSON, atomically; returns ``path``.

    The record is serialised before anything touches the disk, so a value JSON cannot
    hold fails without leaving a file.
    """
    from fedsim_app.io.atomic import write_text_atomic

    text = json.dumps(record.to_dict(), indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def read_record(path: str | Path) -> Record:
    """Read a record written by :func:`write_record`.

    Raises
    ------
    RecordError
        naming the file when it is missing, not JSON or not a FedSim record.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordError(f"{path}: cannot read the record ({exc.strerror})") from None
    except ValueError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}) — the file is damaged; "
                          "write it again") from None
    return Record.from_dict(data, source=path)


__all__ = ["FORMAT", "FORMAT_VERSION", "KINDS", "Record", "RecordError", "read_record",
           "write_record"]
