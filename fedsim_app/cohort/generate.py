"""Generate the virtual multi-site cohort on disk, resumably.

One nnU-Net v2 dataset per site (``Dataset501_FedSimSiteA`` …) with the parameter record
of every case and the train/val/test split. A case is written image, label, then record;
the record marks it finished, so an interrupted run picks up where it stopped and never
counts a half-written case.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fedsim_app.cohort.case import case_id_for, render_case, sample_case
from fedsim_app.errors import FedSimError
from fedsim_app.io.atomic import write_json_atomic
from fedsim_app.shape.grid_size import check_label_size
from fedsim_app.sites import Site, load_sites

SPLIT_FILE = "fedsim_split.json"
DEFAULT_LABEL_CODES = "mmwhs"


@dataclass
class CohortSummary:
    root: Path
    datasets: dict[str, Path] = field(default_factory=dict)
    written: int = 0
    skipped: int = 0
    seconds: float = 0.0


def select_sites(keys: str | Iterable[str] | None) -> list[Site]:
    """Sites by key (``"A,B"`` or ``["A", "B"]``); all shipped sites when ``None``."""
    sites = load_sites()
    if keys is None:
        return list(sites.values())
    wanted = [k.strip().upper() for k in (keys.split(",") if isinstance(keys, str) else keys)]
    unknown = [k for k in wanted if k not in sites]
    if unknown:
        raise FedSimError(f"unknown site(s) {', '.join(unknown)} — the cohort has sites "
                          f"{', '.join(sites)}")
    return [sites[k] for k in wanted]


def generate_cohort(
    out: str | Path,
    *,
    sites: str | Iterable[str] | None = None,
    cases: int | None = None,
    size: int = 128,
    seed: int = 0,
    fidelity: str = "fast",
    label_codes: str = DEFAULT_LABEL_CODES,
    progress: Callable[[str, int, int, bool], None] | None = None,
) -> CohortSummary:
    """Write the cohort under ``out``.

    Parameters
    ----------
    sites : site keys (default: A, B and C)
    cases : cases per site, 1 or more (default: each site's full Table 1 split: 20, 34, 34)
    size : voxels per side of every case
    fidelity : ``"fast"`` (image-domain scanner model) or ``"physics"`` (diffct)
    progress : called after each case as ``progress(case_id, done, total, skipped)``
    """
    from fedsim_app.io import DatasetWriter

    if fidelity not in ("fast", "physics"):
        raise FedSimError(f"--fidelity must be 'fast' or 'physics', not {fidelity!r}")
    check_label_size(size)
    if cases is not None and cases < 1:
        raise FedSimError(f"--cases {cases}: give 1 or more cases per site, or leave "
                          "--cases out for each site's full split")
    chosen = select_sites(sites)
    summary = CohortSummary(root=Path(out))
    plan = [(s, i) for s in chosen for i in range(cases or s.n_cases)]
    t0 = time.perf_counter()
    writers = {}
    for done, (site, index) in enumerate(plan, start=1):
        if site.key not in writers:
            writers[site.key] = DatasetWriter(
                Path(out) / site.dataset.folder, site.dataset.name, label_codes=label_codes,
                description=f"{site.title}; FedSim virtual cohort, scanner {site.scanner.name}")
        writer = writers[site.key]
        n_site = cases or site.n_cases
        record = sample_case(site, index, seed=seed, size=size, fidelity=fidelity,
                             n_cases=n_site)
        skipped = _finished_same(writer, record)
        if not skipped:
            image, label = render_case(record)
            writer.add_case(record.case_id, image, label, record=record.to_dict(),
                            kind="cohort-case")
        summary.skipped += skipped
        summary.written += not skipped
        if progress:
            progress(record.case_id, done, len(plan), skipped)
    for site in chosen:
        writer = writers[site.key]
        writer.finalize()
        n_site = cases or site.n_cases
        split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for index in range(n_site):
            split[site.subset_of(index, n_site)].append(case_id_for(site, index))
        write_json_atomic(writer.root / SPLIT_FILE, split)
        summary.datasets[site.key] = writer.root
    summary.seconds = time.perf_counter() - t0
    return summary


def _finished_same(writer, record) -> bool:
    """A finished case made from the same record (else it is rendered again)."""
    import json

    if not writer.has_case(record.case_id):
        return False
    saved = json.loads(writer.record_path(record.case_id).read_text()).get("record", {})
    mine = json.loads(json.dumps(record.to_dict()))  # tuples → lists, as saved
    return all(saved.get(k) == mine[k] for k in mine if k != "fedsim_version")
