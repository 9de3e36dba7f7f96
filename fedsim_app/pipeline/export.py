"""Write one rendered sample to disk: NIfTI volumes, PLY meshes and the parameter record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError

#: file name → (SampleResult attribute, Volume kind, grid attribute)
VOLUMES = {
    "image.nii.gz": ("full_ct_hu", "image", "grid"),
    "labels.nii.gz": ("labels", "label", "grid"),
    "material_mu_per_mm.nii.gz": ("material_mu_per_mm", "image", "grid"),
    "coarse_ct.nii.gz": ("coarse_ct_hu", "image", "coarse_grid"),
}


def export_result(result, out_dir: str | Path) -> dict[str, Path]:
    """Write ``result`` into ``out_dir``; returns ``{what: path}``.

    ``image.nii.gz`` (full CT, HU), ``labels.nii.gz`` (internal codes),
    ``material_mu_per_mm.nii.gz``, ``coarse_ct.nii.gz`` (all with their affines),
    ``meshes/<structure>.ply`` (world RAS+ mm) and ``params.json`` (the record).
    Every file is written atomically.
    """
    import trimesh

    from fedsim_app.io import Volume, write_nifti

    out = Path(out_dir)
    try:
        (out / "meshes").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FedSimError(f"cannot create {out}: {exc.strerror}; choose a writable folder") from exc
    written: dict[str, Path] = {}
    for name, (attr, kind, grid_attr) in VOLUMES.items():
        vol = Volume(np.asarray(getattr(result, attr)), getattr(result, grid_attr), kind=kind)
        written[name] = write_nifti(vol, out / name,
                                    label_codes="internal" if kind == "label" else None)
    for name, (verts, faces) in result.meshes.items():
        path = out / "meshes" / f"{name}.ply"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        trimesh.Trimesh(vertices=verts, faces=faces, process=False).export(tmp, file_type="ply")
        os.replace(tmp, path)
        written[f"meshes/{name}.ply"] = path
    path = out / "params.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    record = result.record()
    record["files"] = sorted(written)
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)
    written["params.json"] = path
    return written
