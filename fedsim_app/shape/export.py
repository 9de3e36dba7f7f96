"""Write decoded hearts: meshes (PLY, OBJ, STL via trimesh), label maps and records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MESH_FORMATS = ("ply", "obj", "stl")


def write_meshes(topology, vertices, out_dir, formats=MESH_FORMATS, prefix: str = "") -> list:
    """One file per structure and format, ``<prefix><name>.<fmt>``; returns the paths."""
    from fedsim_app.io.atomic import write_atomic

    out_dir = Path(out_dir)
    written = []
    for name, mesh in topology.meshes(np.asarray(vertices, float)).items():
        for fmt in formats:
            data = mesh.export(file_type=fmt)
            blob = data.encode() if isinstance(data, str) else data
            path = out_dir / f"{prefix}{name}.{fmt}"
            written.append(write_atomic(path, lambda tmp, b=blob: tmp.write_bytes(b)))
    return written


def write_labels(labels, grid, path, like=None, codes=None) -> Path:
    """Label map as NIfTI; ``like`` (an input :class:`~fedsim_app.io.Volume`) gives the
    file orientation to restore (its grid must equal ``grid``); ``codes`` (a code set
    name, mapping or :class:`~fedsim_app.io.labels.CodeSet`) writes the internal labels in
    that dataset's codes (None: internal codes). A named code set is recorded in the
    header, so the file reads back as is."""
    from fedsim_app.io import Volume, write_nifti
    from fedsim_app.io.labels import CODE_SETS, from_internal, get_code_set

    arr = np.asarray(labels, np.uint8)
    name = "internal"
    if codes is not None:
        cs = get_code_set(codes)
        arr = from_internal(arr, cs)  # uint8, or int16 for codes above 255 (MM-WHS)
        name = cs.name if cs.name in CODE_SETS else None  # a mapping file is not recorded
    if like is not None:
        vol = like.with_array(arr, grid, kind="label")
        return write_nifti(vol, path, orientation="original", dtype=arr.dtype,
                           label_codes=name)
    return write_nifti(Volume(arr, grid, kind="label"), path, dtype=arr.dtype,
                       label_codes=name)


def write_json(path, obj) -> Path:
    """Indented JSON, written atomically."""
    from fedsim_app.io.atomic import write_json_atomic

    return write_json_atomic(Path(path), obj)
