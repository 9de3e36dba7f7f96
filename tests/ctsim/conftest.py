"""``device``: every test that takes it runs on the CPU, and again on CUDA where there is one
(marker ``cuda``; CI has none, a GPU machine runs them with ``pytest -m cuda``)."""

import pytest
import torch

_NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, _NO_CUDA])])
def device(request):
    return request.param
