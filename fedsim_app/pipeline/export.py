"""Write one rendered sample to disk: NIfTI volumes, PLY meshes and the parameter record."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError

#: file name → (SampleResult attribute, Volume kind, grid attribute)
VOLUMES = {
    "image.nii.gz": ("ct_hu", "image", "grid"),
    "labels.nii.gz": ("labels", "label", "grid"),
    "material_mu_per_mm.nii.gz": ("material_mu_per_mm", "image", "coarse_grid"),
    "coarse_ct.nii.gz": ("coarse_ct_hu", "image", "coarse_grid"),
}


def export_result(result, out_dir: str | Path) -> dict[str, Path]:
    """Write ``result`` into ``out_dir``; returns ``{what: path}``.

    ``image.nii.gz`` (the CT, HU), ``labels.nii.gz`` (internal codes),
    ``material_mu_per_mm.nii.gz`` and ``coarse_ct.nii.gz`` (16³), all with their affines,
    ``meshes/<structure>.ply`` (world RAS+ mm) and ``params.json`` (the record).
    Every file is written atomically.
    """
    import trimesh

    from fedsim_app.io import Volume, write_atomic, write_json_atomic, write_nifti

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
        mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
        path = write_atomic(out / "meshes" / f"{name}.ply",
                            lambda tmp, m=mesh: m.export(tmp, file_type="ply"))
        written[f"meshes/{name}.ply"] = path
    record = result.record()
    record["files"] = sorted([*written, "params.json"])
    written["params.json"] = write_json_atomic(out / "params.json", record)
    return written
