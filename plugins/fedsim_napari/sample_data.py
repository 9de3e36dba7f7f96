"""File > Open Sample > FedSim: one labelled CT case per cohort site, in mm.

A case is generated on first use (``fedsim_app.cohort.sample_case`` / ``render_case`` at
a small size) and cached as NIfTI under ``cache_dir()/"samples"/<site>``, where the
FedSim status dock lists it; later opens read the cache.
"""

from __future__ import annotations

from pathlib import Path

from fedsim_app.ctsim.window import CT_WINDOW_HU

SAMPLE_SIZE = 64  # voxels per axis: seconds to generate on a CPU


def sample_dir(site_key: str) -> Path:
    from fedsim_app.assets import cache_dir

    return cache_dir() / "samples" / f"site_{site_key.lower()}"


def ensure_sample(site_key: str, size: int | None = None) -> tuple[Path, Path]:
    """Paths of the cached image and label NIfTI of site ``site_key`` (made if missing,
    ``size``³ voxels, default :data:`SAMPLE_SIZE`)."""
    from fedsim_app.cohort import render_case, sample_case
    from fedsim_app.io import write_json_atomic, write_nifti
    from fedsim_app.sites import load_sites

    folder = sample_dir(site_key)
    image, label = folder / "image.nii.gz", folder / "label.nii.gz"
    if image.is_file() and label.is_file():
        return image, label
    site = load_sites()[site_key.upper()]
    record = sample_case(site, 0, size=size or SAMPLE_SIZE)
    image_vol, label_vol = render_case(record)
    folder.mkdir(parents=True, exist_ok=True)
    write_nifti(label_vol, label, label_codes="internal")
    write_json_atomic(folder / "record.json", record.to_dict())
    write_nifti(image_vol, image)  # written last: its presence marks a complete sample
    return image, label


def sample_layers(site_key: str) -> list[tuple]:
    """LayerData tuples (image, labels) of a site's sample case, scaled in mm.

    A failure becomes a napari notification saying what to do, and opens nothing.
    """
    from napari.utils.notifications import show_error

    from fedsim_app.errors import FedSimError
    from fedsim_app.io import read_nifti
    from fedsim_napari.views import label_colormap

    try:
        image_path, label_path = ensure_sample(site_key)
    except (FedSimError, OSError, KeyError) as exc:
        show_error(f"FedSim could not make the sample case of site {site_key}: {exc}. "
                   f"Delete {sample_dir(site_key)} and try again; `fedsim info` checks "
                   "the installation.")
        return []
    image, label = read_nifti(image_path), read_nifti(label_path, kind="label")
    name = f"FedSim site {site_key.upper()}"
    common = {"units": "mm", "axis_labels": ("z", "y", "x")}
    return [
        (image.array, {"name": f"{name} CT", "colormap": "gray",
                       "contrast_limits": CT_WINDOW_HU, **image.grid.napari_kwargs(),
                       **common}, "image"),
        (label.array, {"name": f"{name} labels", "colormap": label_colormap(), "opacity": 0.6,
                       **label.grid.napari_kwargs(), **common}, "labels"),
    ]


def site_a() -> list[tuple]:
    return sample_layers("A")


def site_b() -> list[tuple]:
    return sample_layers("B")


def site_c() -> list[tuple]:
    return sample_layers("C")
