"""The world's contrast timing per site (iodine ranges), read from ``assets/sites/sites.toml``.

Only the world (the virtual cohort) uses these: they say how bright each hospital's
contrast-enhanced blood is when the cohort is drawn. The model never reads them; it learns
each site's appearance from that site's images.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from fedsim_app.errors import FedSimError


@dataclass(frozen=True)
class SiteContrast:
    """Iodine concentration ranges (mg I/mL of blood) a site's cases are drawn from."""

    iodine_left_mg_per_ml: tuple[float, float]
    iodine_right_mg_per_ml: tuple[float, float]


def load_contrast(path: str | Path | None = None) -> dict[str, SiteContrast]:
    """Contrast ranges of every site in a sites TOML (default: the shipped one), by key."""
    from fedsim_app.assets import asset_path

    path = Path(path) if path else asset_path("sites", "sites.toml")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FedSimError(f"{path}: cannot read the sites file ({exc})") from exc
    out = {}
    for key, entry in raw.items():
        try:
            out[key] = SiteContrast(_pair(entry["iodine_left_mg_per_ml"]),
                                    _pair(entry["iodine_right_mg_per_ml"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise FedSimError(
                f"{path}: site [{key}] is missing or has a bad value for {exc} — "
                "see the shipped assets/sites/sites.toml for the expected keys"
            ) from exc
    return out


def _pair(value) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if hi < lo:
        raise ValueError(f"range [{lo}, {hi}] is reversed")
    return lo, hi
