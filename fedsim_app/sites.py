"""The one record of a site (a hospital): who it scans, with which scanner, its data.

A :class:`Site` is what every part of FedSim means by "site": the cohort writes its
dataset, the model renders through its scanner and enhancer, the GUI and CLI select it by
key. The scanner is a field of the site (a :class:`~fedsim_app.ctsim.ScannerProfile`),
never a synonym for it. Sites are read from ``assets/sites/sites.toml``; each entry names
its scanner profile in ``assets/scanners``.

Examples
--------
>>> from fedsim_app.sites import get_site
>>> site = get_site("A")
>>> site.scanner.name, site.dataset.folder
('site_a', 'Dataset501_FedSimSiteA')
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from fedsim_app.errors import FedSimError

if TYPE_CHECKING:
    from fedsim_app.ctsim.scanner import ScannerProfile

SUBSETS = ("train", "val", "test")


@dataclass(frozen=True)
class SiteDataset:
    """A site's dataset on disk: nnU-Net v2 id and name (folder ``Dataset{id:03d}_{name}``)."""

    id: int
    name: str

    @property
    def folder(self) -> str:
        """nnU-Net v2 dataset folder name, e.g. ``Dataset501_FedSimSiteA``."""
        return f"Dataset{self.id:03d}_{self.name}"


@dataclass(frozen=True)
class Site:
    """One hospital.

    Parameters
    ----------
    key : short key (``"A"``), what the GUI and CLI select
    title : one line for people
    population : the population it scans (``adult``, ``chd-l``, ``chd-m``)
    scanner : its CT scanner and protocol
    dataset : its dataset's id and name
    split : ``(("train", n), ("val", n), ("test", n))`` case counts
    enhancer : the site's enhancer checkpoint, or None (the model then shows the coarse
        CT upsampled, and says so)
    """

    key: str
    title: str
    population: str
    scanner: ScannerProfile
    dataset: SiteDataset
    split: tuple[tuple[str, int], ...]
    enhancer: Path | None = None

    @property
    def n_cases(self) -> int:
        return sum(n for _, n in self.split)

    @property
    def effective_energy_keV(self) -> float:
        """The scanner's effective energy: where the model's attenuation is evaluated."""
        return float(self.scanner.effective_energy_keV)

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
        for name in SUBSETS:
            edge += counts[name]
            if index < edge:
                return name
        return "test"

    def to_dict(self) -> dict:
        """JSON-able summary (what records write beside a sample)."""
        return {"key": self.key, "title": self.title, "population": self.population,
                "scanner": self.scanner.name, "dataset": self.dataset.folder,
                "split": dict(self.split),
                "enhancer": None if self.enhancer is None else str(self.enhancer)}


def _sites_file(path) -> Path:
    from fedsim_app.assets import asset_path

    return Path(path) if path else asset_path("sites", "sites.toml")


def load_sites(path: str | Path | None = None) -> dict[str, Site]:
    """Every site of a sites TOML (default: the shipped three sites), by key.

    Raises
    ------
    FedSimError
        Naming the file and the site when the file cannot be read, a key is missing or a
        value is bad.
    """
    path = _sites_file(path)
    return dict(_load(path.resolve()))


@cache
def _load(path: Path) -> tuple[tuple[str, Site], ...]:
    from fedsim_app.ctsim.scanner import load_scanner

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FedSimError(f"{path}: cannot read the sites file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FedSimError(f"{path}: not valid TOML ({exc})") from exc
    sites = []
    for key, entry in raw.items():
        try:
            scanner = str(entry["scanner"])
            local = path.parent / scanner
            profile = load_scanner(local if local.suffix == ".toml" and local.exists()
                                   else scanner)
            enhancer = entry.get("enhancer") or None
            split = entry["split"]
            site = Site(
                key=str(key),
                title=str(entry["title"]),
                population=str(entry["population"]),
                scanner=profile,
                dataset=SiteDataset(int(entry["dataset_id"]), str(entry["dataset_name"])),
                split=tuple((k, int(split[k])) for k in SUBSETS),
                enhancer=None if enhancer is None else (path.parent / str(enhancer)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FedSimError(
                f"{path}: site [{key}] is missing or has a bad value for {exc} — "
                "see the shipped assets/sites/sites.toml for the expected keys"
            ) from exc
        except FedSimError as exc:
            raise FedSimError(f"{path}: site [{key}]: {exc}") from exc
        sites.append((site.key, site))
    if not sites:
        raise FedSimError(f"{path}: no sites defined; add a [A] table like the shipped file")
    return tuple(sites)


def get_site(key: str | Site, path: str | Path | None = None) -> Site:
    """The site called ``key`` (case-insensitive, e.g. ``"A"``); a Site passes through.

    Raises
    ------
    FedSimError
        For an unknown key, listing the known ones.
    """
    if isinstance(key, Site):
        return key
    sites = load_sites(path)
    wanted = str(key).strip().upper()
    if wanted not in sites:
        raise FedSimError(f"unknown site {key!r}; the sites are {', '.join(sites)} "
                          f"(from {_sites_file(path)})")
    return sites[wanted]


def site_keys(path: str | Path | None = None) -> list[str]:
    """Keys of the sites, in file order."""
    return list(load_sites(path))


__all__ = ["SUBSETS", "Site", "SiteDataset", "get_site", "load_sites", "site_keys"]
