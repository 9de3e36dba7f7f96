"""The one rule for label grid sizes given on the command line (``--size``)."""

from __future__ import annotations

from fedsim_app.errors import FedSimError

#: Fewer voxels per side than this cannot hold the seven structures apart: the thin
#: myocardium and the great vessels vanish below it.
MIN_LABEL_SIZE = 16


def check_label_size(size: int, option: str = "--size") -> int:
    """Return ``size`` when a heart fits in a grid of that many voxels per side.

    Raises
    ------
    FedSimError
        Naming ``option`` and the smallest size accepted.
    """
    if size < MIN_LABEL_SIZE:
        raise FedSimError(f"{option} {size} is too small to hold a heart; "
                          f"use {MIN_LABEL_SIZE} or more")
    return size
