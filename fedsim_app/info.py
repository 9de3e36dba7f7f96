"""What this installation has: versions, torch device, assets, sample data."""

from __future__ import annotations

import platform
from importlib import metadata

from fedsim_app import __version__

# Distributions whose versions matter when a user reports a problem.
_PACKAGES = (
    "torch", "numpy", "scipy", "nibabel", "trimesh", "scikit-image", "diffct", "xraydb",
    "monai", "napari", "magicgui", "qtpy", "PyQt5", "npe2", "flwr",
)


def package_versions() -> dict[str, str | None]:
    """Installed version of each relevant package (``None`` where it is not installed).

    Read from package metadata, so nothing is imported (napari and Qt stay unloaded).
    """
    out: dict[str, str | None] = {"fedsim": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def system_info() -> dict:
    """Versions, torch device and threads, assets found and cached sample data."""
    import torch

    from fedsim_app.assets import assets_dir, cache_dir, list_assets
    from fedsim_app.device import default_device

    try:
        root = str(assets_dir())
        assets = list_assets()
    except Exception as exc:  # reported, not raised: `info` must always answer
        root, assets = f"not found ({exc})", []
    samples_root = cache_dir() / "samples"
    samples = sorted(p.name for p in samples_root.glob("*") if p.is_dir())
    return {
        "versions": package_versions(),
        "torch_device": str(default_device()),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "assets_dir": root,
        "assets": assets,
        "cache_dir": str(cache_dir()),
        "sample_data": samples,
    }
