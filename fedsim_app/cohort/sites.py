"""Site definitions of the virtual cohort, loaded from ``assets/sites/sites.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from fedsim_app.assets import asset_path
from fedsim_app.errors import FedSimError


@dataclass(frozen=True)
class SiteSpec:
    """One hospital of the virtual cohort: who it scans, with what, and how it splits."""

    key: str
    title: str
    population: str
    scanner: str
    dataset_id: int
    dataset_name: str
    split: tuple[tuple[str, int], ...]
    iodine_left_mg_per_ml: tuple[float, float]
    iodine_right_mg_per_ml: tuple[float, float]

    @property
    def n_cases(self) -> int:
        return sum(n for _, n in self.split)

    @property
    def folder_name(self) -> str:
        """nnU-Net v2 dataset folder name, e.g. ``Dataset501_FedSimSiteA``."""
        return f"Dataset{self.dataset_id:03d}_{self.dataset_name}"

    def subset_of(self, index: int, n_cases: int | None = None) -> str:
        """``train`` / ``val`` / ``test`` of case ``index``; with fewer cases than the
        full split, the split is scaled down keeping at least one case per subset."""
        counts = dict(self.split)
        n = self.n_cases if n_cases is None else n_cases
        if n != self.n_cases:
            scaled = {k: max(1, round(v * n / self.n_cases)) for k, v in counts.items()}
            scaled["train"] = max(1, n - scaled["val"] - scaled["test"])
            counts = scaled
        edge = 0
        for name in ("train", "val", "test"):
            edge += counts[name]
            if index < edge:
                return name
        return "test"


def load_sites(path: str | Path | None = None) -> dict[str, SiteSpec]:
    """All sites of a sites TOML (default: the shipped three-site cohort), by key."""
    path = Path(path) if path else asset_path("sites", "sites.toml")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FedSimError(f"{path}: cannot read the sites file ({exc})") from exc
    sites = {}
    for key, entry in raw.items():
        try:
            sites[key] = SiteSpec(
                key=key,
                title=str(entry["title"]),
                population=str(entry["population"]),
                scanner=str(entry["scanner"]),
                dataset_id=int(entry["dataset_id"]),
                dataset_name=str(entry["dataset_name"]),
                split=tuple((k, int(entry["split"][k])) for k in ("train", "val", "test")),
                iodine_left_mg_per_ml=_pair(entry["iodine_left_mg_per_ml"]),
                iodine_right_mg_per_ml=_pair(entry["iodine_right_mg_per_ml"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FedSimError(
                f"{path}: site [{key}] is missing or has a bad value for {exc} — "
                "see the shipped assets/sites/sites.toml for the expected keys"
            ) from exc
    return sites


def _pair(value) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if hi < lo:
        raise ValueError(f"range [{lo}, {hi}] is reversed")
    return lo, hi
