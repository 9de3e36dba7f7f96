import numpy as np
import torch
import trimesh

from fedsim_app.io.grid import Grid
from fedsim_app.shape import SoftConfig, cosine, fd_gradient, soft_gradient
from fedsim_app.shape.model import Topology
from fedsim_app.shape.soft import neighbourhood, soft_occupancy


def _linear_weights(grid, seed):
    """Smooth per-label weight fields (8, nz, ny, nx): a loss ∫ w_label over the shape."""
    r = np.random.default_rng(seed)
    zc, yc, xc = grid.axis_centers()
    z, y, x = np.meshgrid(zc, yc, xc, indexing="ij")
    w = np.stack([
        a[0] + (a[1] * x + a[2] * y + a[3] * z) / 50 for a in r.normal(size=(8, 4))
    ])
    w[0] = 0
    return w


def test_soft_gradient_agrees_with_finite_differences(toy_ssm):
    c = tuple(toy_ssm.center_mm)
    fine = Grid.centered(64, 2.4, c)
    coarse = Grid.centered(32, 4.8, c)
    w_fine = _linear_weights(fine, 0)
    w_coarse = torch.tensor(_linear_weights(coarse, 0))
    dv_f, dv_c = np.prod(fine.spacing_mm), np.prod(coarse.spacing_mm)

    def hard(labels):  # (B, nz, ny, nx) → (B,)
        return np.array([np.take_along_axis(w_fine, lab[None].astype(np.int64), 0).sum()
                         for lab in labels]) * dv_f

    def soft(probs):
        return (probs * w_coarse).sum() * dv_c

    rng = np.random.default_rng(7)
    for _ in range(2):
        p = rng.uniform(-0.7, 0.7, 21)
        _, g_fd = fd_gradient(toy_ssm, p, hard, fine, eps=0.05)
        _, g_soft = soft_gradient(toy_ssm, p, soft, coarse, SoftConfig(tau_mm=2.4))
        assert cosine(g_fd, g_soft) >= 0.9
        # the 8 zero-padded modes (toy SSM has 6) carry no gradient
        assert np.all(g_fd[6:14] == 0) and np.allclose(g_soft[6:14], 0)


def test_gradcheck_soft_occupancy_float64():
    m = trimesh.creation.icosphere(subdivisions=1, radius=3.0)
    topo = Topology.from_meshes(("la",), [np.asarray(m.faces)], [len(m.vertices)])
    grid = Grid.centered(5, 1.6, (0.2, -0.1, 0.3))
    cfg = SoftConfig(tau_mm=1.0, band=6.0, k=4)
    v0 = np.asarray(m.vertices, float)
    nb = neighbourhood(v0, topo, grid, cfg)
    assert sum(len(p) for p in nb.points) > 20  # most of the tiny grid lies in the band

    def f(v):
        return soft_occupancy(v, topo, grid, cfg, nb)

    v = torch.tensor(v0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (v,), eps=1e-6, atol=1e-6)


def test_soft_occupancy_approaches_hard_labels(toy_ssm):
    from fedsim_app.shape import voxelize

    grid = Grid.centered(32, 4.0, tuple(toy_ssm.center_mm))
    v = toy_ssm.decode(np.zeros(21))
    occ = soft_occupancy(torch.tensor(v), toy_ssm.topology, grid, SoftConfig(tau_mm=0.4))
    from fedsim_app.shape import soft_labels

    probs = soft_labels(occ, toy_ssm.topology.names)
    assert torch.allclose(probs.sum(0), torch.ones(grid.shape, dtype=probs.dtype))
    hard = voxelize(toy_ssm, v, grid)
    agree = (probs.argmax(0).numpy() == hard).mean()
    assert agree > 0.99


def test_fd_gradient_is_one_sided_at_the_bounds(toy_ssm):
    grid = Grid.centered(24, 6.0, tuple(toy_ssm.center_mm))
    calls = []

    def loss(labels):
        calls.append(len(labels))
        return (labels > 0).reshape(len(labels), -1).sum(1).astype(float)

    p = np.zeros(21)
    p[20] = 1.0  # largest scale: only the step down is inside [-1, 1]
    _, g = fd_gradient(toy_ssm, p, loss, grid, eps=0.1)
    assert sum(calls) == 43
    assert g[20] > 0  # a larger heart covers more voxels
    assert np.all(np.isfinite(g))


def test_soft_label_volumes_batch_backward(toy_ssm):
    from fedsim_app.shape import soft_label_volumes

    grid = Grid.centered(16, 8.0, tuple(toy_ssm.center_mm))
    u = torch.zeros(2, 21, requires_grad=True)
    probs = soft_label_volumes(toy_ssm, torch.tanh(u), grid, SoftConfig(tau_mm=3.0))
    assert probs.shape == (2, 8, 16, 16, 16)
    probs[:, 1:].sum().backward()
    assert u.grad.shape == (2, 21) and u.grad[:, 20].gt(0).all()  # scale grows the heart
