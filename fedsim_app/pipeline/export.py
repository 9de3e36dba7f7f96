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
    Every file is written atomically, the meshes and the record by the writers every
    FedSim export uses (:func:`fedsim_app.export.dataset.write_meshes`,
    :func:`fedsim_app.io.records.write_record`).
    """
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
    from fedsim_app.export.dataset import write_meshes
    from fedsim_app.io.records import HEADER, Record, write_record

    for path in write_meshes(out / "meshes", result.meshes):
        written[f"meshes/{path.name}"] = path
    # the Explorer's sample record is a FedSim record like every other output's
    sample = result.record()
    fields = {k: v for k, v in sample.items() if k not in HEADER}
    fields["sample_version"] = sample.get("format_version")  # the Explorer record's content
    fields["files"] = sorted([*written, "params.json"])
    written["params.json"] = write_record(out / "params.json", Record("explorer-sample", fields))
    return written
