"""Read a napari Labels layer as (labels, Grid) for the SSM fit."""

from __future__ import annotations

import numpy as np

from fedsim_app.io.grid import Grid


def labels_and_grid(viewer, name: str) -> tuple[np.ndarray, Grid]:
    """Internal-code labels (z, y, x) and the canonical grid of layer ``name``.

    Raises ValueError with what to do when the layer cannot be fitted.
    """
    if not name or name not in viewer.layers:
        raise ValueError("open a Labels layer first (File > Open, e.g. an MM-WHS label "
                         "file); the Explorer's own labels layer is not a fit target")
    layer = viewer.layers[name]
    data = np.asarray(layer.data)
    if data.ndim != 3:
        raise ValueError(f"layer {name!r} is {data.ndim}D; the fit needs a 3D label volume")
    if data.max() > 7 or data.min() < 0:
        raise ValueError(f"layer {name!r} has label values outside 0..7; open label files "
                         "with FedSim's NIfTI reader, which converts MM-WHS codes")
    if not np.any(data):
        raise ValueError(f"layer {name!r} is empty; draw or open a heart first")
    if np.any(np.abs(layer.rotate - np.eye(3)) > 1e-6):
        raise ValueError(f"layer {name!r} is rotated; only axis-aligned volumes can be fitted")
    sz, sy, sx = (float(s) for s in layer.scale)
    tz, ty, tx = (float(t) for t in layer.translate)
    return data.astype(np.uint8), Grid(data.shape, (sz, sy, sx), (tx, ty, tz))
