"""float64 gradcheck of the chain's differentiable stages on tiny inputs."""

import numpy as np
import torch

from fedsim_app.io.grid import Grid
from fedsim_app.models.coarse_ct import CoarseScanner
from fedsim_app.models.generator import (
    fix_mat,
    label_neighbourhoods,
    material_to_mu,
    soft_label_probs,
)
from fedsim_app.shape import SoftConfig
from fedsim_app.sites import get_site


def _scanner(**kw):
    return CoarseScanner(get_site("A").scanner, size=4, spacing_mm=30.0, precision="float64",
                         n_views=6, use_cache=False, device="cpu", **kw)


def test_gradcheck_material_to_coarse_ct_direct_and_matrix():
    profile = get_site("A").scanner
    rng = np.random.default_rng(0)
    m = torch.tensor(rng.uniform(-0.5, 0.5, (2, 1, 4, 4, 4)), requires_grad=True)
    direct = _scanner()
    assert not direct.matrix_ready

    def chain(scanner):
        return lambda mat: scanner(material_to_mu(mat, profile))

    # diffct's backward does not take undefined gradients
    assert torch.autograd.gradcheck(chain(direct), (m,), eps=1e-6, atol=1e-5, rtol=1e-4,
                                    fast_mode=True, check_undefined_grad=False)
    fast = _scanner()
    fast.build()
    assert fast.matrix_ready
    assert torch.autograd.gradcheck(chain(fast), (m,), eps=1e-6, atol=1e-5, rtol=1e-4,
                                    fast_mode=True)
    # both paths are the same linear map
    with torch.no_grad():
        torch.testing.assert_close(chain(direct)(m), chain(fast)(m), atol=1e-6, rtol=1e-6)


def test_gradcheck_fix_mat_of_label_probabilities():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(1, 8, 4, 4, 4)), requires_grad=True)
    table = torch.linspace(0.0, 0.03, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: fix_mat(x.softmax(1), table, size=2), (logits,),
                                    eps=1e-6, atol=1e-7)


def test_gradcheck_soft_labels_wrt_params(toy_ssm):
    grid = Grid.centered(8, 7.0, tuple(toy_ssm.center_mm))
    cfg = SoftConfig(tau_mm=4.0, band=4.0)
    p0 = torch.tensor(np.random.default_rng(2).uniform(-0.3, 0.3, (1, 21)))
    # the nearest-face search (and its blend weights) is held fixed, as in training
    nb = label_neighbourhoods(toy_ssm, p0, grid, cfg)
    assert sum(len(pts) for pts in nb[0].points) > 50
    w = torch.tensor(np.random.default_rng(3).normal(size=(8, *grid.shape)))

    def f(p):  # a weighted sum of every label probability: all voxels in play
        return (soft_label_probs(toy_ssm, p, grid, cfg, nb) * w).sum()

    p = p0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (p,), eps=1e-6, atol=1e-5, rtol=1e-3)
