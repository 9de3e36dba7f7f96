"""A tiny cohort (site A, 5 cases at 32³) and a tiny training config, shared by the
training tests. The config skips the coarse scanner's system matrix: the session's cache
is a fresh folder (tests/conftest.py) and building it takes minutes; a handful of steps
through diffct directly cost less."""

import pytest

from fedsim_app.train.config import preset


@pytest.fixture(scope="session")
def tiny_site(tmp_path_factory):
    from fedsim_app.cohort.generate import generate_cohort

    root = tmp_path_factory.mktemp("cohort")
    summary = generate_cohort(root, sites="A", cases=5, size=32, seed=0)
    return summary.datasets["A"]


@pytest.fixture
def tiny_cfg():
    return preset("smoke", phase1_epochs=1, phase2_epochs=1, phase3_epochs=1,
                  slices_per_step=2, coarse_matrix=False)
