"""Set up a federated run folder: which sites, which data each reads, fresh or resumed.

``RUN/federation.json`` records the sites, their data folders and label budgets and the
runtime, so ``--resume`` needs only the folder. ``RUN/config.toml`` is the training
configuration; ``RUN/server.pt`` the server's round checkpoint; ``RUN/rounds.jsonl`` one
line per round; ``RUN/sites/<key>/`` each site's local state (in-process runs; on Flower
each SuperNode keeps its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fedsim_app.errors import FedSimError
from fedsim_app.federated.dp import DPConfig
from fedsim_app.federated.server import CHECKPOINT
from fedsim_app.io.atomic import atomic_path
from fedsim_app.train.config import TrainConfig, from_dict

META = "federation.json"


@dataclass(frozen=True)
class Federation:
    """What a federated run is made of (saved as ``federation.json``)."""

    sites: tuple[str, ...]
    data: dict  # site key -> dataset folder (str)
    labels: dict  # site key -> labelled training volumes
    rounds: int | None
    min_sites: int
    runtime: str
    config: TrainConfig
    build_matrix: bool = True  # sites build the coarse scanner's matrix (see FedClient)
    dp: DPConfig | None = None  # differential privacy of the sites' updates
    view_every: int = 0  # every N rounds one latent through each site (in-process; 0: off)
    sizes: dict | None = None  # site key -> [labelled, unlabelled] volumes (in-process)

    def to_dict(self) -> dict:
        return {"sites": list(self.sites), "data": self.data, "labels": self.labels,
                "rounds": self.rounds, "min_sites": self.min_sites, "runtime": self.runtime,
                "config": self.config.to_dict(), "build_matrix": self.build_matrix,
                "dp": self.dp.to_dict() if self.dp else None, "view_every": self.view_every,
                "sizes": self.sizes}

    @classmethod
    def from_dict(cls, d: dict) -> Federation:
        return cls(tuple(d["sites"]), dict(d["data"]), {k: int(v) for k, v in
                                                        d["labels"].items()},
                   d["rounds"], int(d["min_sites"]), str(d["runtime"]),
                   from_dict(d["config"]), bool(d.get("build_matrix", True)),
                   DPConfig.from_dict(d.get("dp")), int(d.get("view_every", 0)),
                   d.get("sizes"))

    def save(self, run_dir: str | Path) -> None:
        run_dir = Path(run_dir)
        with atomic_path(run_dir / META) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        with atomic_path(run_dir / "config.toml") as tmp:
            tmp.write_text(self.config.to_toml())


def load_federation(run_dir: str | Path) -> Federation:
    path = Path(run_dir) / META
    if not path.is_file():
        raise FedSimError(f"{path}: no federated run there — check the folder, or start a "
                          "new run without --resume")
    try:
        return Federation.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise FedSimError(f"{path}: unreadable run record ({exc}) — start a new run") from None


def check_new_run(run_dir: str | Path) -> None:
    """Refuse to start over a folder that holds a run (it would be overwritten)."""
    if (Path(run_dir) / CHECKPOINT).exists() or (Path(run_dir) / META).exists():
        raise FedSimError(f"{run_dir}: holds a federated run already — add --resume to "
                          "continue it, or choose a new --out folder")


def site_data_folders(keys, cohort: str | Path, data: dict[str, str]) -> dict[str, str]:
    """``{key: folder}``: ``data[key]`` where given, else the site's cohort dataset."""
    from fedsim_app.sites import get_site

    out = {}
    for key in keys:
        path = Path(data[key]) if key in data else Path(cohort) / get_site(key).dataset.folder
        if not path.is_dir():
            raise FedSimError(f"{path}: no dataset for site {key} — write the cohort first "
                              f"(`fedsim cohort --out {cohort}`) or pass --data "
                              f"{key}=DIR")
        out[key] = str(path)
    return out
