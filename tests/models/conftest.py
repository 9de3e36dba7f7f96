import pytest
import torch

from fedsim_app.shape import build_ssm
from fedsim_app.shape.synthetic import toy_population

_NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture(scope="session")
def toy_ssm():
    """SSM of seven toy hearts (6 modes, zero-padded to 14)."""
    shapes, topo = toy_population(7, seed=1, subdivisions=2)
    return build_ssm(shapes, topo)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, _NO_CUDA])])
def device(request):
    return request.param
