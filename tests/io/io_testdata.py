"""Tiny volumes and hand-broken NIfTI files for the io and validate tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from fedsim_app.io.grid import Grid
from fedsim_app.io.nifti import write_nifti
from fedsim_app.io.volume import Volume


def ramp_image(shape=(6, 7, 8), spacing=(2.0, 1.5, 1.0), origin=(-10.0, 5.0, 30.0)) -> Volume:
    """A float32 image whose every voxel differs, so any flip or transpose shows."""
    arr = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 0.5 - 40.0
    return Volume(arr, Grid(shape, spacing, origin))


def blob_label(image: Volume) -> Volume:
    """Internal labels 1..7 in distinct boxes (asymmetric, so flips show)."""
    lab = np.zeros(image.shape, np.uint8)
    nz, ny, nx = image.shape
    for code in range(1, 8):
        z = code % nz
        lab[z, 1 + code % (ny - 1), : 1 + code % (nx - 1)] = code
    lab[0, 0, 0] = 1
    return Volume(lab, image.grid, kind="label")


def write_raw_nii(path: Path, vol: Volume, *, patch: dict[int, bytes] | None = None,
                  compress: bool | None = None) -> Path:
    """Write ``vol`` then overwrite header bytes (offset → bytes), optionally gzipped.

    nibabel repairs some header fields on save, so broken headers are made by hand.
    """
    plain = path.with_name(path.name.replace(".nii.gz", ".raw.nii"))
    write_nifti(vol, plain)
    data = bytearray(plain.read_bytes())
    plain.unlink()
    for offset, raw in (patch or {}).items():
        data[offset:offset + len(raw)] = raw
    gz = path.name.endswith(".gz") if compress is None else compress
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    return path


def pixdim_patch(index: int, value: float) -> dict[int, bytes]:
    """Header patch setting NIfTI-1 pixdim[index] (little endian)."""
    return {76 + 4 * index: struct.pack("<f", value)}


def dim_patch(dims: tuple[int, ...]) -> dict[int, bytes]:
    """Header patch setting NIfTI-1 dim[0..] (little endian int16)."""
    return {40: struct.pack(f"<{len(dims)}h", *dims)}
