"""Read and write NIfTI volumes with the affine honoured and every bad input named.

Reading checks the raw header first (nibabel silently repairs a zero or negative
``pixdim`` on load, so it is parsed from the bytes), refuses implausibly large volumes
before allocating, then reads the voxels and reorients them to the canonical grid
(:mod:`fedsim_app.io.volume`). Writing is atomic (temporary name, then rename).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedsim_app.io.atomic import write_atomic
from fedsim_app.io.errors import (
    CorruptFileError,
    DimensionError,
    LabelValueError,
    MissingFileError,
    NonFiniteError,
    NotNiftiError,
    SpacingError,
    TooLargeError,
)
from fedsim_app.io.volume import CANONICAL, Volume, from_canonical, to_canonical

# 1024^3 voxels: beyond any cardiac CT; refusing from the header avoids a 4-8 GiB allocation.
DEFAULT_MAX_VOXELS = 1024**3
NIFTI_SUFFIXES = (".nii.gz", ".nii")
_READ_ERRORS = (EOFError, OSError, zlib.error, ValueError, gzip.BadGzipFile)


@dataclass(frozen=True)
class RawHeader:
    """The fields FedSim checks, parsed from the header bytes as stored."""

    version: int  # 1 or 2
    shape: tuple[int, ...]
    pixdim: tuple[float, ...]  # pixdim[1:1+ndim], unrepaired
    descrip: str = ""  # the header's free-text description


#: How FedSim records the code set of a label map it writes, in the header description,
#: so that its own outputs read back without ``--label-codes``.
LABEL_CODES_TAG = "FedSim label codes: "


def is_nifti_name(path: str | Path) -> bool:
    """True for names ending in ``.nii`` or ``.nii.gz`` (any case)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_raw_header(path: str | Path) -> RawHeader:
    """Parse dims and pixdim from the stored header bytes (no repair, no data read).

    Raises
    ------
    MissingFileError, CorruptFileError, NotNiftiError
    """
    from nibabel.openers import ImageOpener

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "file not found", "check the path")
    try:
        with ImageOpener(str(path)) as f:
            head = f.read(540)
    except _READ_ERRORS as exc:
        raise CorruptFileError(path, f"cannot decompress the header ({exc})",
                               "the file is truncated or not gzip: copy or export it again",
                               ) from exc
    if len(head) < 348:
        raise NotNiftiError(path, f"only {len(head)} bytes, shorter than a NIfTI header",
                            "it is truncated or not a NIfTI file: export it again as .nii.gz")
    for endian in "<>":
        size = int(np.frombuffer(head[:4], dtype=f"{endian}i4")[0])
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            dims = np.frombuffer(head[40:56], dtype=f"{endian}i2").astype(int)
            pix = np.frombuffer(head[76:108], dtype=f"{endian}f4").astype(float)
            descrip = head[148:228]
            version = 1
            break
        if size == 540 and len(head) >= 540 and head[4:7] in (b"n+2", b"ni2"):
            dims = np.frombuffer(head[16:80], dtype=f"{endian}i8").astype(int)
            pix = np.frombuffer(head[104:168], dtype=f"{endian}f8").astype(float)
            descrip = head[240:320]
            version = 2
            break
    else:
        raise NotNiftiError(path, "not a NIfTI-1/NIfTI-2 file (no NIfTI header magic)",
                            "convert it to NIfTI (.nii.gz), e.g. with dcm2niix or SimpleITK")
    ndim = int(dims[0])
    if not 1 <= ndim <= 7:
        raise CorruptFileError(path, f"header declares {ndim} dimensions",
                               "the header is corrupt: export the volume again")
    text = descrip.split(b"\0", 1)[0].decode("latin-1", "replace").strip()
    return RawHeader(version, tuple(int(d) for d in dims[1:1 + ndim]),
                     tuple(float(p) for p in pix[1:1 + ndim]), text)


def recorded_label_codes(path: str | Path) -> str | None:
    """The code set FedSim recorded in a label file's header when it wrote it, else None."""
    descrip = read_raw_header(path).descrip
    if descrip.startswith(LABEL_CODES_TAG):
        return descrip[len(LABEL_CODES_TAG):].strip() or None
    return None


def check_header(path: Path, header: RawHeader, max_voxels: int = DEFAULT_MAX_VOXELS) -> int:
    """Check size, dimensionality and spacing from the raw header; returns 3 or 4 (ndim kept).

    Raises
    ------
    TooLargeError, DimensionError, SpacingError
    """
    shape = header.shape
    if min(shape) < 1:
        raise CorruptFileError(path, f"header shape {shape} has an empty axis",
                               "the header is corrupt: export the volume again")
    n_vox = int(np.prod(np.asarray(shape, dtype=np.float64)))
    if n_vox > max_voxels:
        raise TooLargeError(path, f"header declares {shape} = {n_vox:,} voxels, more than the "
                            f"limit of {max_voxels:,}", "crop or downsample it first, or raise "
                            "max_voxels if the volume is genuine")
    if len(shape) < 3 or (len(shape) > 3 and any(s != 1 for s in shape[3:])):
        raise DimensionError(path, f"{len(shape)}D volume of shape {shape}, a 3D volume is "
                             "expected", "save a single 3D frame (one channel, one time point)")
    bad = [p for p in header.pixdim[:3] if not p > 0]
    if bad:
        raise SpacingError(path, f"header voxel spacing {header.pixdim[:3]} has a zero or "
                           "negative value", "fix pixdim in the header (e.g. with nibabel or "
                           "3D Slicer) to the scanner's spacing in mm")
    return len(shape)


def read_nifti(
    path: str | Path,
    *,
    kind: str = "image",
    max_voxels: int = DEFAULT_MAX_VOXELS,
    oblique: str = "warn",
) -> Volume:
    """Read a 3D NIfTI file onto the canonical RAS grid.

    Parameters
    ----------
    path : ``.nii`` or ``.nii.gz``
    kind : ``"image"`` (float32 intensities, must be finite) or ``"label"`` (integer codes,
        as stored: map them with :func:`fedsim_app.io.labels.to_internal`)
    max_voxels : refuse larger volumes from the header, before reading any voxel
    oblique : ``"warn"`` (reorient to the closest axes) or ``"error"``

    Returns
    -------
    Volume with ``array`` (nz, ny, nx) and ``orientation`` the file's axis codes.

    Raises
    ------
    DataError subclasses naming the file: MissingFileError, CorruptFileError,
    NotNiftiError, TooLargeError, DimensionError, SpacingError, NonFiniteError,
    LabelValueError, ObliqueError.
    """
    import nibabel as nib

    path = Path(path)
    header = read_raw_header(path)
    check_header(path, header, max_voxels)
    # the version is known from the magic: no sniffing, which fails on truncated files
    klass = nib.Nifti1Image if header.version == 1 else nib.Nifti2Image
    try:
        img = klass.from_filename(str(path), mmap=False)  # own the voxels: files get replaced
        data = np.asanyarray(img.dataobj)
    except _READ_ERRORS as exc:
        raise CorruptFileError(path, f"the voxel data cannot be read to the end ({exc})",
                               "the file is truncated or corrupt: copy or export it again") from exc
    except Exception as exc:  # nibabel's own header errors
        raise NotNiftiError(path, f"nibabel cannot read it ({exc})",
                            "convert it to NIfTI (.nii.gz) again") from exc
    if data.ndim > 3:  # trailing singleton axes only (checked from the header)
        data = data.reshape(data.shape[:3])
    if kind == "label":
        data = _as_integer_labels(path, data)
    elif kind == "image":
        data = data.astype(np.float32, copy=False)
        if not np.isfinite(data).all():
            n_bad = int((~np.isfinite(data)).sum())
            raise NonFiniteError(path, f"{n_bad} voxels are NaN or Inf",
                                 "replace them (e.g. by the air value) before use")
    else:
        raise ValueError(f"kind must be 'image' or 'label', got {kind!r}")
    array, grid, codes, angle = to_canonical(data, img.affine, path=path, oblique=oblique)
    return Volume(array, grid, path, codes, kind, angle)


def _as_integer_labels(path: Path, data: np.ndarray) -> np.ndarray:
    if np.issubdtype(data.dtype, np.integer):
        return data
    if not np.isfinite(data).all():
        raise LabelValueError(path, "label map holds NaN or Inf", "save labels as integers")
    rounded = np.rint(data)
    if np.abs(rounded - data).max(initial=0.0) > 1e-3:
        raise LabelValueError(path, "label map holds non-integer values",
                              "is this an image? labels must be integer codes")
    return rounded.astype(np.int32)


def write_nifti(volume: Volume, path: str | Path, *, orientation: str | None = None,
                dtype=None, label_codes: str | None = None) -> Path:
    """Write ``volume`` atomically, affine included.

    Parameters
    ----------
    volume : the canonical volume
    path : ``.nii.gz`` or ``.nii``
    orientation : axis codes of the file (``"RAS"`` by default; ``"original"`` uses
        ``volume.orientation``, e.g. to give back an ``LAS`` file as it came)
    dtype : stored dtype; default float32 for images and the smallest integer type for labels
    label_codes : name of the code set a label map's values are in (e.g. ``"internal"``);
        recorded in the header description so :func:`~fedsim_app.io.read_label` reads the
        file back without being told

    Examples
    --------
    >>> write_nifti(vol, "case_image.nii.gz", orientation="original")  # doctest: +SKIP
    """
    import nibabel as nib

    path = Path(path)
    if not is_nifti_name(path):
        raise ValueError(f"{path}: NIfTI files end in .nii or .nii.gz")
    codes = volume.orientation if orientation == "original" else (orientation or CANONICAL)
    array = volume.array
    if dtype is None:
        dtype = np.float32 if volume.kind == "image" else _label_dtype(array)
    data, affine = from_canonical(np.asarray(array, dtype=dtype), volume.grid, codes)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    if volume.kind == "label":
        img.header.set_intent("label")
        if label_codes:
            img.header["descrip"] = f"{LABEL_CODES_TAG}{label_codes}"[:79].encode()
    return write_atomic(path, lambda tmp: nib.save(img, str(tmp)))


def _label_dtype(array: np.ndarray):
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if lo >= 0 and hi < 256:
        return np.uint8
    return np.int16 if lo >= -32768 and hi < 32768 else np.int32
