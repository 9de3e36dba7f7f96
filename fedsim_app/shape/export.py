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


def write_labels(labels, grid, path, like=None, label_codes: str = "internal") -> Path:
    """Label map as NIfTI; ``like`` (an input :class:`~fedsim_app.io.Volume`) gives the
    file orientation to restore (its grid must equal ``grid``). ``label_codes`` names the
    code set of ``labels`` and is recorded in the header, so the file reads back as is."""
    from fedsim_app.io import Volume, write_nifti

    if like is not None:
        vol = like.with_array(np.asarray(labels, np.uint8), grid, kind="label")
        return write_nifti(vol, path, orientation="original", dtype=np.uint8,
                           label_codes=label_codes)
    return write_nifti(Volume(np.asarray(labels, np.uint8), grid, kind="label"), path,
                       dtype=np.uint8, label_codes=label_codes)


def write_json(path, obj) -> Path:
    """Indented JSON, written atomically."""
    from fedsim_app.io.atomic import write_json_atomic

    return write_json_atomic(Path(path), obj)
