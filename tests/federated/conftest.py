"""A tiny one-site cohort served as three identical sites, and a smoke config."""


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
    return preset("smoke", phase1_epochs=2, phase2_epochs=0, phase3_epochs=1,
                  slices_per_step=2)


@pytest.fixture(autouse=True)
def _no_matrix_build(monkeypatch):
    """The single-site trainer (compared against) builds no matrix either."""
    from fedsim_app.models.coarse_ct import CoarseScanner

    monkeypatch.setattr(CoarseScanner, "build", lambda self: None)
