"""Export a site model's samples as an nnU-Net v2 raw dataset (MSD keys included).

Each case is drawn into a record (latent, seed), rendered through the one chain, and
written by the dataset writer (:class:`fedsim_app.io.DatasetWriter`): image in HU as
int16, labels in the chosen codes, optional PLY meshes, then the case record last, so a
case killed mid-write has no record and is redone by the next run. A finished case whose
record matches what this run would draw is kept.

Layout (``DIR`` named ``Dataset<id>_<name>``, or such a folder made inside ``DIR``)::

    dataset.json, imagesTr/, labelsTr/       what nnU-Net and MONAI read
    fedsim/<case>.json                       the case records (export-case)
    fedsim/meshes/<case>/<structure>.ply     with --meshes
    fedsim_novelty.csv                       one row per case: distance to the training set
    fedsim_export.json                       the export's summary record
"""

from __future__ import annotations

import csv
import errno
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.io.records import Record, RecordError, read_record, write_record

NOVELTY_FILE = "fedsim_novelty.csv"
SUMMARY_FILE = "fedsim_export.json"
DATASET_RE = re.compile(r"^Dataset(\d{3})_[A-Za-z0-9_]+$")
BASE_ID = 600  # site A exports to Dataset601_..., B to 602, ...


def dataset_folder(out: str | Path, site) -> tuple[Path, int]:
    """``(folder, nnU-Net id)``: ``out`` itself when named ``Dataset<id>_<name>``, else
    ``out/Dataset<60x>_FedSimExport<site>``."""
    out = Path(out)
    m = DATASET_RE.match(out.name)
    if m:
        return out, int(m.group(1))
    from fedsim_app.sites import site_keys

    keys = site_keys()
    did = BASE_ID + 1 + (keys.index(site.key) if site.key in keys else len(keys))
    return out / f"Dataset{did:03d}_FedSimExport{site.key}", did


def read_latents(path: str | Path, width: int) -> np.ndarray:
    """Latents (n, width) from ``.npy`` or a text/CSV file (one case per row)."""
    path = Path(path)
    try:
        arr = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=None if
                                                                        path.suffix != ".csv"
                                                                        else ",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise FedSimError(f"{path}: cannot read latents ({exc}) — give a .npy array or a "
                          f"text file with {width} numbers per row") from None
    arr = np.asarray(arr, np.float32)
    if arr.ndim != 2 or arr.shape[1] != width or not np.isfinite(arr).all():
        raise FedSimError(f"{path}: latents must be finite, {width} per row; got shape "
                          f"{arr.shape}")
    return arr


@dataclass
class ExportSummary:
    """What an export did."""

    root: Path
    dataset_id: int
    n: int
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    novelty: list = field(default_factory=list)

    @property
    def volumes_per_min(self) -> float:
        return 60.0 * self.written / self.seconds if self.seconds > 0 else 0.0

    def nnunet_command(self) -> str:
        parent = self.root.resolve().parent
        return (f"nnUNet_raw={parent} nnUNet_preprocessed={parent.parent}/nnUNet_preprocessed "
                f"nnUNet_results={parent.parent}/nnUNet_results sh -c 'nnUNetv2_plan_and_"
                f"preprocess -d {self.dataset_id} --verify_dataset_integrity -c 3d_fullres && "
                f"nnUNetv2_train {self.dataset_id} 3d_fullres 0'")

    def lines(self) -> list[str]:
        done = self.written + self.skipped
        out = [f"{done}/{self.n} cases in {self.root} ({self.written} written, "
               f"{self.skipped} kept from an earlier run) in {self.seconds:.1f} s: "
               f"{self.volumes_per_min:.1f} volumes/min"]
        if self.novelty:
            d = np.array([r["latent_distance"] for r in self.novelty])
            iou = np.array([r["heart_iou"] for r in self.novelty])
            out.append(f"novelty: distance to the nearest training latent min {d.min():.3g} "
                       f"median {np.median(d):.3g}; heart IoU with the nearest training "
                       f"heart median {np.median(iou):.3f} max {iou.max():.3f} "
                       f"(table: {self.root / NOVELTY_FILE})")
        if not self.interrupted:
            out.append(f"train nnU-Net on it: {self.nnunet_command()}")
        return out


def case_record(model, draw, result, novelty: dict, *, seed: int, size: int) -> dict:
    """The export-case record's content (the writer adds files, codes and grid)."""
    from fedsim_app.shape import PARAM_NAMES

    params = [float(v) for v in result.params[0].detach().cpu()]
    g = model.written_grid
    return {
        "site": result.site, "index": draw.index, "export_seed": int(seed),
        "case_seed": draw.seed, "latent": None if draw.latent is None else list(draw.latent),
        "params": params, "params_named": dict(zip(PARAM_NAMES, params, strict=True)),
        "size": int(size), "device": str(model.generator.device),
        "precision": model.generator.config.precision,
        "grid": {"shape": list(g.shape), "spacing_mm": list(g.spacing_mm),
                 "origin_mm": list(g.origin_mm)},
        "model": model.source, "shape_source": result.shape_source,
        "material_source": result.material_source, "enhancer_source": result.enhancer_source,
        "energy_keV": result.energy_keV, "novelty": novelty,
    }


def _same_case(writer, case_id: str, model, draw, size: int) -> bool:
    """A finished case drawn the same way (same model file, draw and size)."""
    if not writer.has_case(case_id):
        return False
    try:
        rec = read_record(writer.record_path(case_id)).get("record", {})
    except RecordError:
        return False
    latent = None if draw.latent is None else list(draw.latent)
    return (rec.get("case_seed") == draw.seed and rec.get("latent") == latent
            and rec.get("size") == size
            and rec.get("precision", "float32") == model.generator.config.precision
            and rec.get("model", {}).get("checkpoint_sha256")
            == model.source["checkpoint_sha256"]
            and (draw.params is None or rec.get("params") == list(draw.params)))


def write_meshes(folder: Path, meshes: dict) -> list[Path]:
    """``{structure: (vertices (V, 3), faces (F, 3))}`` → ``folder/<structure>.ply``."""
    import trimesh

    from fedsim_app.io.atomic import write_bytes_atomic

    paths = []
    for name, (verts, faces) in meshes.items():
        blob = trimesh.Trimesh(vertices=np.asarray(verts), faces=np.asarray(faces),
                               process=False).export(file_type="ply")
        paths.append(write_bytes_atomic(folder / f"{name}.ply", blob))
    return paths


def _disk_error(exc: OSError, root: Path):
    from fedsim_app.io.errors import UnwritableError

    where = Path(exc.filename) if exc.filename else root
    if exc.errno == errno.ENOSPC:
        return UnwritableError(where, "the disk is full (no space left on device)",
                               "free space there or export to another folder; rerun the same "
                               "command to resume")
    return UnwritableError(where, f"cannot write ({exc.strerror})",
                           "choose a folder you can write to; rerun to resume")


def export_dataset(model, *, n: int, out: str | Path, seed: int = 0,
                   label_codes="internal", meshes: bool = False, latents=None,
                   progress: Callable | None = None,
                   should_stop: Callable[[], bool] | None = None) -> ExportSummary:
    """Write ``n`` cases of ``model`` (an :class:`~fedsim_app.export.sample.ExportModel`).

    Parameters
    ----------
    out : the dataset folder, or a folder to make ``Dataset<id>_FedSimExport<site>`` in
    seed : the export's seed; case ``i`` draws from ``case_seed(seed, i)``
    label_codes : code set name, mapping file or :class:`~fedsim_app.io.labels.CodeSet`
    meshes : also write each case's meshes (PLY, world RAS+ mm)
    latents : (n, 32) latents (or (n, 21) parameters for the atlas model) to use
    progress : ``progress(case_id, done, n, skipped)`` after each case
    should_stop : polled between cases; True ends the export after the last finished case

    Raises
    ------
    UnwritableError
        naming the path when the folder cannot be written or the disk is full.
    """
    from fedsim_app.device import keep_freed_memory
    from fedsim_app.io import DatasetWriter, Volume
    from fedsim_app.io.atomic import write_text_atomic

    keep_freed_memory()  # every case allocates the same buffers: reuse them, no page faults
    site = model.generator.site
    size = model.generator.grid.shape[0]
    if latents is not None and len(latents) < n:
        raise FedSimError(f"--latents holds {len(latents)} rows, --n asks for {n}")
    root, did = dataset_folder(out, site)
    writer = DatasetWriter(root, f"FedSimExport{site.key}", label_codes=label_codes,
                           description=f"FedSim export, site {site.key}: "
                           f"{model.source['model']}", image_hu_int16=True)
    summary = ExportSummary(root, did, n)
    t0 = time.perf_counter()
    for i in range(n):
        if should_stop is not None and should_stop():
            summary.interrupted = True
            break
        case_id = f"case_{i:04d}"
        draw = model.draw(i, seed, None if latents is None else latents[i])
        if _same_case(writer, case_id, model, draw, size):
            summary.skipped += 1
        else:
            result = model.render(draw)
            labels = result.labels[0].cpu().numpy().astype(np.uint8)
            novelty = model.novelty(draw, labels)
            rec = case_record(model, draw, result, novelty, seed=seed, size=size)
            image = Volume(result.ct_hu[0].cpu().numpy(), model.written_grid, kind="image")
            label = Volume(labels, model.written_grid, kind="label")
            try:
                if meshes:
                    write_meshes(root / "fedsim" / "meshes" / case_id,
                                 model.written_meshes(result.vertices[0].cpu().numpy()))
                writer.add_case(case_id, image, label, record=rec, kind="export-case")
            except OSError as exc:
                raise _disk_error(exc, root) from None
            summary.written += 1
            del result, image, label
        if progress is not None:
            progress(case_id, i + 1, n, summary.skipped)
    summary.seconds = time.perf_counter() - t0
    try:
        writer.finalize()
        summary.novelty = novelty_rows(writer)
        write_text_atomic(root / NOVELTY_FILE, novelty_csv(summary.novelty))
        write_record(root / SUMMARY_FILE, Record("export-summary", {
            "n_requested": n, "cases": len(writer.finished_cases()), "seed": seed,
            "model": model.source, "size": size, "seconds_this_run": summary.seconds,
            "written_this_run": summary.written, "interrupted": summary.interrupted}))
    except OSError as exc:
        raise _disk_error(exc, root) from None
    return summary


def novelty_rows(writer) -> list[dict]:
    """One row per finished case of the dataset: its novelty."""
    rows = []
    for case_id in writer.finished_cases():
        try:
            rec = read_record(writer.record_path(case_id)).get("record", {})
        except RecordError:
            continue
        nov = rec.get("novelty")
        if nov:
            rows.append({"case_id": case_id, **{k: nov[k] for k in (
                "latent_distance", "nearest_by_latent", "heart_iou", "nearest_by_iou")}})
    return rows


def novelty_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = ["case_id", "latent_distance", "nearest_by_latent", "heart_iou", "nearest_by_iou"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def replay(record: str | Path | Record, *, device=None):
    """Render the case an export record describes again (the chain's result).

    Raises
    ------
    FedSimError
        When the record's checkpoint is gone or is not the file it was made with.
    """
    from fedsim_app.export.sample import CaseDraw, file_sha256, load_export_model

    rec = record if isinstance(record, Record) else read_record(record)
    body = rec["record"]
    src = body["model"]
    ckpt = src["checkpoint"]
    if ckpt is not None:
        if not Path(ckpt).is_file():
            raise FedSimError(f"{ckpt}: the record's checkpoint is gone — it is needed to "
                              "replay the case")
        if file_sha256(ckpt) != src["checkpoint_sha256"]:
            raise FedSimError(f"{ckpt}: not the checkpoint the case was made with (sha256 "
                              "differs) — replay needs that exact file")
    model = load_export_model(ckpt, body["site"], size=body["size"],
                              device=device or body["device"],
                              precision=body.get("precision", "float32"))
    params = body["params"] if body["latent"] is None else None
    draw = CaseDraw(body["index"], body["case_seed"],
                    None if body["latent"] is None else tuple(body["latent"]),
                    None if params is None else tuple(params))
    return model.render(draw)


__all__ = ["ExportSummary", "case_record", "dataset_folder", "export_dataset", "novelty_csv",
           "read_latents", "replay", "write_meshes"]
