"""Dataset I/O: NIfTI volumes on the canonical grid, label code sets, dataset layouts.

Everything other datasets bring (orientation, label codes, folder layout) is converted
here, at the boundary; the rest of the engine sees canonical RAS volumes ``(z, y, x)``
with internal label codes.
"""

from fedsim_app.io.atomic import (
    atomic_path,
    write_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from fedsim_app.io.dataset import check_pair, load_case, read_label
from fedsim_app.io.errors import (
    AffineMismatchError,
    CorruptFileError,
    DataError,
    DimensionError,
    EmptyLabelError,
    LabelCodesError,
    LabelValueError,
    LayoutError,
    MissingFileError,
    MissingImageError,
    NonFiniteError,
    NotNiftiError,
    ObliqueError,
    ShapeMismatchError,
    SpacingError,
    TooLargeError,
    UnwritableError,
)
from fedsim_app.io.grid import Grid
from fedsim_app.io.labels import (
    CODE_SETS,
    CodeSet,
    ExtraLabelWarning,
    code_set_from_mapping,
    detect_code_set,
    from_internal,
    get_code_set,
    to_internal,
)
from fedsim_app.io.layouts import CaseFiles, DatasetIndex, detect_layout, index_dataset
from fedsim_app.io.nifti import DEFAULT_MAX_VOXELS, read_nifti, read_raw_header, write_nifti
from fedsim_app.io.resample import (
    crop,
    crop_to_heart,
    fit_to_frame,
    foreground_box,
    preprocess_case,
    resample,
    resample_to_grid,
    target_grid,
)
from fedsim_app.io.validate import Problem, ValidationReport, validate_path
from fedsim_app.io.volume import ObliqueAffineWarning, Volume
from fedsim_app.io.writer import DatasetWriter

__all__ = [
    "AffineMismatchError", "CODE_SETS", "CaseFiles", "CodeSet", "CorruptFileError",
    "DEFAULT_MAX_VOXELS", "DataError", "DatasetIndex", "DatasetWriter", "DimensionError",
    "EmptyLabelError", "ExtraLabelWarning", "Grid", "LabelCodesError", "LabelValueError",
    "LayoutError", "MissingFileError", "MissingImageError", "NonFiniteError", "NotNiftiError",
    "ObliqueAffineWarning", "ObliqueError", "Problem", "ShapeMismatchError", "SpacingError",
    "TooLargeError", "UnwritableError", "ValidationReport", "Volume", "atomic_path", "check_pair",
    "code_set_from_mapping", "crop", "crop_to_heart", "detect_code_set", "detect_layout",
    "foreground_box", "from_internal", "get_code_set", "index_dataset", "load_case",
    "fit_to_frame", "preprocess_case", "read_label", "read_nifti", "read_raw_header", "resample",
    "resample_to_grid", "target_grid", "to_internal", "validate_path", "write_atomic",
    "write_bytes_atomic", "write_json_atomic", "write_nifti", "write_text_atomic",
]
