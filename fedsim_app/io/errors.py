"""Dataset errors. Every one names the file and says what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path

from fedsim_app.errors import FedSimError


class DataError(FedSimError):
    """A dataset file or folder cannot be used as it is.

    Parameters
    ----------
    path : the offending file or folder
    problem : what is wrong, in a user's words
    hint : what to do about it
    """

    def __init__(self, path: str | Path | None, problem: str, hint: str = "") -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.hint = hint
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{problem}" + (f" — {hint}" if hint else ""))


# Specific problems. Callers catch ``DataError``; tests and ``fedsim validate`` use the
# subclass to say which check failed.


class CorruptFileError(DataError):
    """The file cannot be decompressed or read to its end (truncated or corrupt gzip)."""


class NotNiftiError(DataError):
    """The file is not a NIfTI-1/NIfTI-2 image."""


class DimensionError(DataError):
    """The volume is not 3D (2D, or 4D with more than one frame)."""


class NonFiniteError(DataError):
    """The intensities contain NaN or Inf."""


class SpacingError(DataError):
    """The header gives a zero or negative voxel spacing."""


class TooLargeError(DataError):
    """The header declares more voxels than is plausible; nothing was allocated."""


class ObliqueError(DataError):
    """The affine is oblique and the caller asked to refuse oblique volumes."""


class ShapeMismatchError(DataError):
    """Image and label have different shapes."""


class AffineMismatchError(DataError):
    """Image and label lie on different world grids (affines differ beyond the tolerance)."""


class LabelValueError(DataError):
    """The label map holds values outside the chosen code set (or non-integer values)."""


class EmptyLabelError(DataError):
    """The label map holds background only."""


class LabelCodesError(DataError):
    """The label code set is unknown, malformed, or cannot be detected unambiguously."""


class MissingImageError(DataError):
    """A label file has no matching image file."""


class MissingFileError(DataError):
    """A file named by the dataset (dataset.json, a pair) does not exist."""


class LayoutError(DataError):
    """The folder is not a dataset layout FedSim reads, or its dataset.json is malformed."""


class UnwritableError(DataError):
    """The output folder cannot be created or written."""
