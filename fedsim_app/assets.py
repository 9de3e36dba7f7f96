"""Locate the shipped assets (atlas SSM, scanner profiles, default checkpoint).

In a wheel they live in ``fedsim_app/_assets``; in a source or editable checkout they
are the repository's ``assets/`` folder. ``FEDSIM_ASSETS`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedsim_app.errors import FedSimError


def assets_dir() -> Path:
    """The folder that holds FedSim's shipped assets."""
    env = os.environ.get("FEDSIM_ASSETS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "_assets", here.parent / "assets"):
        if candidate.is_dir():
            return candidate
    raise FedSimError(
        f"FedSim's assets folder was not found next to {here} — reinstall FedSim, "
        "or set FEDSIM_ASSETS to the folder that holds ssm/ and scanners/"
    )


def asset_path(*parts: str, must_exist: bool = True) -> Path:
    """Path of one asset, e.g. ``asset_path("scanners", "site_a.toml")``."""
    path = assets_dir().joinpath(*parts)
    if must_exist and not path.exists():
        raise FedSimError(
            f"asset {path} is missing — rebuild it with `make assets` or reinstall FedSim"
        )
    return path


def list_assets() -> list[tuple[str, int]]:
    """Every shipped asset as ``(relative path, size in bytes)``, sorted."""
    root = assets_dir()
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size)
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def cache_dir() -> Path:
    """Where generated data (sample cases, previews) is cached; ``FEDSIM_CACHE`` overrides."""
    env = os.environ.get("FEDSIM_CACHE")
    root = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = root if env else root / "fedsim"
    path.mkdir(parents=True, exist_ok=True)
    return path
