"""Projection-domain noise for the coarse simulator, as sparse diffct-derived maps.

diffct's FDK is FDK(s) = G(A ⊙ ramp(c ⊙ s)): cosine pre-weights c, the windowed ramp filter
along u, angular weights A and a voxel-driven bilinear backprojection G. With an identity
filter response and unit pre-weights diffct computes G(A ⊙ ·) alone, a sparse map (each
voxel reads four detector pixels per view); applying diffct to unit sinograms once gives it
exactly. Likewise the Siddon projector P is sparse. A noisy coarse render is then
M μ + G'(ramp(c ⊙ n)) with n the noise on P μ: the same numbers as the direct path, at the
cost of two sparse products and one batched FFT filter.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from fedsim_app.ctsim._diffct import quiet_diffct
from fedsim_app.ctsim.coarse import basis_projections
from fedsim_app.ctsim.operator import CTOperator


def _sparse_columns(columns, n_rows: int):
    """COO pieces (row, col, value) of dense column blocks, dropping exact zeros."""
    import torch

    rows, cols, vals = [], [], []
    for start, block in columns:  # block: (b, n_rows) = columns start..start+b
        nz = block.nonzero(as_tuple=True)
        rows.append(nz[1])
        cols.append(nz[0] + start)
        vals.append(block[nz])
    return torch.cat(rows), torch.cat(cols), torch.cat(vals)


def build_noise_operators(op: CTOperator, *, batch: int = 256) -> dict:
    """Sparse P (R×N) and G' (N×R) of ``op`` as COO tensors in a dict (see module doc)."""
    diffct = quiet_diffct()
    import torch

    n = op.volume_shape[0] * op.volume_shape[1] * op.volume_shape[2]
    r = op.n_views * op.detector_shape[0] * op.detector_shape[1]
    pieces = [(start, sino.reshape(stop - start, r))
              for start, stop, sino in basis_projections(op, batch)]
    p_rows, p_cols, p_vals = _sparse_columns(pieces, r)

    kwargs = op.fdk_weights_kwargs(learnable=True)
    n_fft = 2 * op.detector_shape[0] // 2 + 1  # pad_factor 2: rfft length 2U//2+1
    kwargs.update(projection_weights=torch.ones(op.detector_shape, dtype=op.dtype),
                  filter_response=torch.ones(n_fft, dtype=op.dtype))
    kwargs.pop("window")

    def backproject_one(sino):
        return diffct.fdk(sino, op.trajectory, op.volume_shape, op.angles, **kwargs)

    # Probe G' with coloured sinograms instead of R unit ones: within one view and one
    # (u, v) parity class a voxel reads at most one pixel (its bilinear 2×2 footprint), so
    # a sinogram of ones on that class returns each voxel's weight, and a second one
    # holding pixel codes 1, 2, … returns weight × code, which names the pixel.
    v_n, u_n, d_n = op.range_shape
    probes, owners = [], []
    for view in range(v_n):
        for pu in (0, 1):
            for pv in (0, 1):
                ones = torch.zeros(op.range_shape, dtype=op.dtype)
                ones[view, pu::2, pv::2] = 1.0
                pixels = ones.reshape(-1).nonzero()[:, 0]  # global pixel ids of this class
                codes = torch.zeros(r, dtype=op.dtype)
                codes[pixels] = torch.arange(1, len(pixels) + 1, dtype=op.dtype)
                probes += [ones, codes.reshape(op.range_shape)]
                owners.append(pixels)
    outputs = []
    for start in range(0, len(probes), batch):
        block = torch.stack(probes[start:start + batch]).to(op.device)
        outputs.append(torch.func.vmap(backproject_one)(block).detach().reshape(-1, n).cpu())
    outputs = torch.cat(outputs)  # (2·classes, N)
    g_rows, g_cols, g_vals = [], [], []
    for c, pixels in enumerate(owners):
        weight, coded = outputs[2 * c], outputs[2 * c + 1]
        voxels = weight.nonzero()[:, 0]
        code = torch.round(coded[voxels].double() / weight[voxels].double()).long()
        g_rows.append(voxels)
        g_cols.append(pixels[code - 1])
        g_vals.append(weight[voxels])
    g_rows, g_cols, g_vals = torch.cat(g_rows), torch.cat(g_cols), torch.cat(g_vals)
    return {"p_index": torch.stack([p_rows, p_cols]), "p_values": p_vals,
            "g_index": torch.stack([g_rows, g_cols]), "g_values": g_vals}


def _sparse_linear(a, a_t, x):
    """a @ x for CSR ``a`` and dense (K, B) ``x``, with the gradient a_t @ grad (CSR too).

    torch's COO products are several times slower on a CPU, and CSR has no transpose
    product in autograd, so both orientations are kept.
    """
    import torch

    class SparseLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, dense):
            return a @ dense

        @staticmethod
        def backward(ctx, grad):
            return a_t @ grad

    return SparseLinear.apply(x)


@dataclass(frozen=True)
class NoiseOperators:
    """Sparse projector ``p`` (R, N), FDK backprojector ``g`` (N, R) and cosine weights."""

    op: CTOperator
    p: object  # CSR (R, N)
    p_t: object  # CSR (N, R)
    g: object  # CSR (N, R)
    g_t: object  # CSR (R, N)
    cosine: object  # (U, Vd)

    def project(self, mu_per_mm):
        """P μ for (..., nz, ny, nx) → (..., V, U, Vd)."""

        lead = mu_per_mm.shape[:-3]
        flat = mu_per_mm.reshape(-1, self.p.shape[1]).to(device=self.g.device,
                                                         dtype=self.g.dtype)
        out = _sparse_linear(self.p, self.p_t, flat.T.contiguous())  # (R, B)
        return out.T.reshape(*lead, *self.op.range_shape)

    def fdk(self, sinogram):
        """diffct's FDK of (..., V, U, Vd) line integrals, through the sparse backprojector."""
        diffct = quiet_diffct()

        lead = sinogram.shape[:-3]
        w = sinogram.to(device=self.g.device, dtype=self.g.dtype) * self.cosine
        q = diffct.ramp_filter_1d(w, dim=-2, sample_spacing=self.op.detector_pitch_mm[0],
                                  pad_factor=2, window=self.op.window)
        flat = q.reshape(-1, self.g.shape[1])
        out = _sparse_linear(self.g, self.g_t, flat.T.contiguous())  # (N, B)
        return out.T.reshape(*lead, *self.op.volume_shape)

    def noise_image(self, mu_per_mm, i0: float, *, generator=None, differentiable=False,
                    eps=None):
        """FDK of the quantum noise on P μ (1/mm); add it to the noise-free M μ."""
        from fedsim_app.ctsim.simulate import add_quantum_noise

        p = self.project(mu_per_mm)
        noisy = add_quantum_noise(p, i0, generator=generator, differentiable=differentiable,
                                  eps=eps)
        return self.fdk(noisy - (p if differentiable else p.detach()))


def load_or_build_noise_operators(op: CTOperator, *, use_cache: bool = True) -> NoiseOperators:
    diffct = quiet_diffct()
    import torch

    from fedsim_app.ctsim.coarse import load_or_build

    t = load_or_build(op, "coarse_noise", build_noise_operators, use_cache=use_cache)
    n = op.volume_shape[0] * op.volume_shape[1] * op.volume_shape[2]
    r = op.n_views * op.detector_shape[0] * op.detector_shape[1]
    kw = dict(check_invariants=True)
    p = torch.sparse_coo_tensor(t["p_index"], t["p_values"], (r, n), **kw).coalesce()
    g = torch.sparse_coo_tensor(t["g_index"], t["g_values"], (n, r), **kw).coalesce()
    du, dv = op.detector_pitch_mm
    cosine = diffct.cone_cosine_weights(*op.detector_shape, du, dv, op.sdd_mm,
                                        dtype=op.dtype).to(op.device)
    def csr(m):
        with warnings.catch_warnings():  # "CSR support is in beta": the ops we use are not
            warnings.simplefilter("ignore", UserWarning)
            return m.to(device=op.device, dtype=op.dtype).to_sparse_csr()

    return NoiseOperators(op, csr(p), csr(p.t().coalesce()), csr(g), csr(g.t().coalesce()),
                          cosine)
