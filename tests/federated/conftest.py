"""A tiny one-site cohort served as three identical sites, and a smoke config."""

import dataclasses

import pytest

from fedsim_app.train.config import preset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from fedsim_app.cohort.generate import generate_cohort

    root = tmp_path_factory.mktemp("fedcohort")
    return generate_cohort(root, sites="A", cases=5, size=32, seed=0).datasets["A"]


@pytest.fixture
def fed_cfg():
    # phase 2 rounds are local only; the privacy test turns them on
    return preset("smoke", phase1_epochs=1, phase2_epochs=0, phase3_epochs=1,
                  slices_per_step=2)


def twin_sites(n=3):
    """Site A's record under ``n`` keys: identical sites (same scanner, same data)."""
    from fedsim_app.sites import get_site

    a = get_site("A")
    return [dataclasses.replace(a, key=f"A{i}") for i in range(1, n + 1)]


def make_twins(tiny_data, cfg, run_dir, n=3):
    from fedsim_app.federated.client import FedClient

    # no system matrix: its first build takes minutes, and the tests compare like with like
    return [FedClient(s, cfg, tiny_data, 2, run_dir / "sites" / s.key, build_matrix=False)
            for s in twin_sites(n)]


@pytest.fixture(autouse=True)
def _no_matrix_build(monkeypatch):
    """The single-site trainer (compared against) builds no matrix either."""
    from fedsim_app.models.coarse_ct import CoarseScanner

    monkeypatch.setattr(CoarseScanner, "build", lambda self: None)
