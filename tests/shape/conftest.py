import numpy as np
import pytest

from fedsim_app.shape import build_ssm
from fedsim_app.shape.synthetic import toy_population


@pytest.fixture(scope="session")
def toy_ssm():
    """SSM of seven toy hearts (6 modes, zero-padded to 14)."""
    shapes, topo = toy_population(7, seed=1, subdivisions=2)
    return build_ssm(shapes, topo)


@pytest.fixture(scope="session")
def toy_shapes20():
    return toy_population(20, seed=2, subdivisions=2, rigid=True)


@pytest.fixture()
def rng():
    return np.random.default_rng(1234)
