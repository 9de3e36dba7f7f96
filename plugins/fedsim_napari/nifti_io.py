"""NIfTI reader and writers for napari, through the engine's io (orientation and spacing
honoured: layers are shown in mm on the canonical RAS grid).

A file whose values are few whole numbers opens as a Labels layer; where its label code
set is unambiguous (e.g. MM-WHS codes) the labels are shown in FedSim's internal codes and
written back in the file's own codes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.io import (
    Grid,
    LabelCodesError,
    Volume,
    detect_code_set,
    from_internal,
    get_code_set,
    read_nifti,
    to_internal,
    write_nifti,
)
from fedsim_app.io.labels import CODE_SETS
from fedsim_app.io.labels_core import DISPLAY_NAME, NAME_OF
from fedsim_app.io.nifti import recorded_label_codes

MAX_LABEL_VALUES = 64  # more distinct whole numbers than this is an image, not a label map


def get_reader(path):
    if isinstance(path, list):
        if not all(_is_nifti(p) for p in path):
            return None
        return read_layers
    return read_layers if _is_nifti(path) else None


def _is_nifti(path) -> bool:
    name = str(path).lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def read_layers(path) -> list[tuple]:
    """LayerData tuples for one path or a list of paths; a bad file becomes a napari
    notification naming the file (no traceback) and adds nothing."""
    from napari.utils.notifications import show_error

    paths = path if isinstance(path, list) else [path]
    layers = []
    for p in paths:
        try:
            layers.append(layer_data_from_file(p))
        except FedSimError as exc:
            show_error(f"FedSim could not open {Path(p).name}: {exc}")
    return layers or [(None,)]


def layer_data_from_file(path) -> tuple:
    """One ``(data, kwargs, layer_type)`` tuple for a NIfTI file (engine call, no Qt)."""
    vol = read_nifti(path, kind="image")
    name = Path(path).name.removesuffix(".gz").removesuffix(".nii")
    meta = {"fedsim": {"source_path": str(path), "orientation": vol.orientation}}
    kwargs = {"name": name, "metadata": meta, **vol.grid.napari_kwargs()}
    if _looks_like_labels(vol.array):
        raw = vol.array.astype(np.int32)
        try:
            # a label map FedSim wrote names its code set in the header
            recorded = recorded_label_codes(path)
            codes = (get_code_set(recorded) if recorded in CODE_SETS
                     else detect_code_set(np.unique(raw), path=path))
        except LabelCodesError:
            codes = None  # ambiguous or custom codes: show the values as they are
        if codes is not None and codes.name != "internal":
            data = to_internal(raw, codes, path=path)
            meta["fedsim"]["label_codes"] = codes.name
        else:
            data = raw.astype(np.uint16 if raw.max() > 255 else np.uint8)
        if codes is not None:
            present = sorted(int(v) for v in np.unique(data) if v)
            meta["fedsim"]["structures"] = {
                v: DISPLAY_NAME[NAME_OF[v]] for v in present if v in NAME_OF
            }
        return data, kwargs, "labels"
    kwargs.update(colormap="gray", contrast_limits=_window(vol.array))
    return vol.array, kwargs, "image"


def _looks_like_labels(array: np.ndarray) -> bool:
    sample = array.ravel()[:: max(1, array.size // 200_000)]
    if not np.all(np.equal(np.mod(sample, 1), 0)) or sample.min() < 0:
        return False
    values = np.unique(sample)
    if len(values) > MAX_LABEL_VALUES:
        return False
    return bool(np.all(np.equal(np.mod(array, 1), 0)))


def _window(array: np.ndarray) -> tuple[float, float]:
    """FedSim's CT window for an image in HU (air near -1000 present), else its 1-99 %
    range (an MR image, or CT stored in other units)."""
    from fedsim_app.ctsim.window import CT_WINDOW_HU

    lo, hi = np.percentile(array[:: 2, :: 2, :: 2], [1, 99])
    if -1100 <= lo <= -700 and hi > 0:
        return CT_WINDOW_HU
    return (float(lo), float(hi if hi > lo else lo + 1))


def write_image(path: str, data, attributes: dict) -> list[str]:
    return [str(_write(path, np.asarray(data, dtype=np.float32), attributes, "image"))]


def write_labels(path: str, data, attributes: dict) -> list[str]:
    return [str(_write(path, np.asarray(data), attributes, "label"))]


def _write(path: str, data: np.ndarray, attributes: dict, kind: str) -> Path:
    if data.ndim != 3:
        raise FedSimError(f"{path}: FedSim writes 3D volumes; this layer is {data.ndim}D")
    meta = (attributes.get("metadata") or {}).get("fedsim", {})
    grid = grid_from_layer(data.shape, attributes.get("scale"), attributes.get("translate"))
    if kind == "label" and meta.get("label_codes"):
        data = from_internal(data.astype(np.int32), get_code_set(meta["label_codes"]))
    vol = Volume(data, grid, kind=kind, orientation=meta.get("orientation", "RAS"))
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        path = f"{path}.nii.gz"
    codes = meta.get("label_codes") if kind == "label" else None
    return write_nifti(vol, path, orientation="original",
                       label_codes=codes if isinstance(codes, str) else None)


def grid_from_layer(shape, scale, translate) -> Grid:
    """The canonical grid a layer shown in mm stands on (``scale``/``translate`` are z, y, x)."""
    scale = tuple(scale) if scale is not None else (1.0, 1.0, 1.0)
    translate = tuple(translate) if translate is not None else (0.0, 0.0, 0.0)
    return Grid(tuple(shape), scale[-3:], tuple(translate[-3:])[::-1])
