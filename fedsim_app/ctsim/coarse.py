"""The coarse CT simulator the generative model trains through (16³ μ → 16³ HU).

Noise-free project→FDK is a fixed linear map of the volume. Called directly, diffct's
portable (CPU) FDK loops over views in Python and re-validates the geometry on every call,
which costs far more than the arithmetic at 16³ (see ``benchmarks/ctsim.py``). So we apply
diffct once per scanner to every basis volume — projections in batches through
``Projector.project``, FDK under ``torch.func.vmap`` — and keep the resulting exact system
matrix M (N×N, N = size³), cached on disk. A render is then one matmul, its gradient the
transposed matmul, and batches of volumes cost one GEMM. M reproduces diffct's direct path
to float32 rounding (tests/ctsim/test_coarse.py).
"""

from __future__ import annotations

import hashlib
from functools import cached_property

from fedsim_app.ctsim._diffct import quiet_diffct
from fedsim_app.ctsim.operator import CTOperator
from fedsim_app.ctsim.scanner import ScannerProfile
from fedsim_app.ctsim.simulate import mu_to_hu

FORMAT_VERSION = 2

#: The coarse scan's reconstruction window. A site's own kernel (Hann, Shepp-Logan,
#: Ram-Lak) shapes frequencies up to its native detector's Nyquist (2-3 mm pixels); on
#: the coarse grid (13 mm voxels) every frequency lies far below that, where each of those
#: windows is within ~6 % of flat: the coarse scan filters with the flat ramp.
COARSE_WINDOW = "ram-lak"
#: Detector pixels per coarse voxel (across the fan, along the axis) at the isocentre.
#: The site's real pixels are 2-3 mm; a detector scaled to the 13 mm coarse voxel blurred
#: the coarse CT like a 13 mm detector would (a unit voxel kept 20 % of its value at site
#: B), so no material map could reproduce a real volume's structure means through it.
COARSE_DETECTOR_OVERSAMPLE = (2, 1)


#: Unit volumes probed per diffct call when building the matrix. Smaller batches keep
#: diffct's work arrays small: at 16³ (26 views, site B) a whole build took 17.5 s with 64
#: against 30.8 s with 512 on the 2-core CPU (docs/benchmarks.md, issue 9's section).
PROBE_BATCH = 64


def basis_projections(op: CTOperator, batch: int = PROBE_BATCH):
    """Yield ``(start, stop, sinograms (b, V, U, Vd))`` of the unit volumes
    ``start..stop-1`` of ``op``'s grid (flattened z, y, x order), ``batch`` at a time."""
    import torch

    n = op.volume_shape[0] * op.volume_shape[1] * op.volume_shape[2]
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        basis = torch.zeros(stop - start, n, dtype=op.dtype, device=op.device)
        basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        with torch.no_grad():
            sino = op.forward(basis.reshape(-1, *op.volume_shape))
        # yield outside no_grad: the caller's FDK (vmapped) must run in its own grad mode
        yield start, stop, sino


def build_system_matrix(op: CTOperator, *, batch: int = PROBE_BATCH):
    """The (N, N) matrix of ``op.fdk(op.forward(·))`` on flattened (z, y, x) volumes.

    Column j is diffct's reconstruction of the j-th unit voxel.
    """
    diffct = quiet_diffct()
    import torch

    n = int(torch.tensor(op.volume_shape).prod())
    kwargs = op.fdk_weights_kwargs(learnable=True)

    def fdk_one(sino):
        return diffct.fdk(sino, op.trajectory, op.volume_shape, op.angles, **kwargs)

    columns = []
    for start, stop, sino in basis_projections(op, batch):  # sino: (b, V, U, Vd)
        recon = torch.func.vmap(fdk_one)(sino)  # (b, nz, ny, nx)
        columns.append(recon.detach().reshape(stop - start, n))
    return torch.cat(columns).T.contiguous()  # (N_out, N_in)


def _cache_file(op: CTOperator, kind: str = "coarse"):
    diffct = quiet_diffct()

    from fedsim_app.assets import cache_dir

    key = hashlib.sha256(
        f"{FORMAT_VERSION}|{kind}|{diffct.__version__}|{op!r}".encode()).hexdigest()
    return cache_dir() / "ctsim" / f"{kind}_{key[:20]}.pt"


def load_or_build(op: CTOperator, kind: str, build, *, use_cache: bool = True) -> dict:
    """Tensors ``build(op)`` returns (a dict), cached on disk per operator and ``kind``."""
    import torch

    path = _cache_file(op, kind)
    if use_cache and path.exists():
        data = torch.load(path, weights_only=True, map_location=op.device)
        if data.get("format_version") == FORMAT_VERSION and data.get("operator") == repr(op):
            return data["tensors"]
    tensors = build(op)
    if use_cache:
        from fedsim_app.io.atomic import write_atomic

        payload = {"format_version": FORMAT_VERSION, "operator": repr(op),
                   "tensors": {k: v.cpu() for k, v in tensors.items()}}
        write_atomic(path, lambda tmp: torch.save(payload, tmp))
    return tensors


def load_or_build_matrix(op: CTOperator, *, use_cache: bool = True):
    """Load the cached system matrix of ``op`` or build (and cache) it."""
    tensors = load_or_build(op, "coarse", lambda o: {"matrix": build_system_matrix(o)},
                            use_cache=use_cache)
    return tensors["matrix"].to(device=op.device, dtype=op.dtype)


class CoarseCT:
    """A site's coarse CT simulator: μ (..., n, n, n) → HU (..., n, n, n).

    ``size`` voxels per axis of ``spacing_mm`` each (default: the profile's field of view
    spread over ``size`` voxels); the scan has the site's geometry, effective energy and HU
    calibration, ``profile.coarse_views`` views, a detector finer than the voxel
    (:data:`COARSE_DETECTOR_OVERSAMPLE`) and the flat ramp (:data:`COARSE_WINDOW`), so it
    keeps a coarse volume's values (docs/benchmarks.md, issue 9). The matrix depends on
    the geometry, so each (profile, size, spacing) has its own cached matrix.

    Examples
    --------
    >>> import torch
    >>> ct = CoarseCT(load_scanner("site_a"))          # doctest: +SKIP
    >>> hu = ct(torch.full((2, 16, 16, 16), 0.02))       # doctest: +SKIP
    """

    def __init__(self, profile: ScannerProfile, *, size: int = 16, spacing_mm: float | None = None,
                 n_views: int | None = None, precision: str = "float32", device=None,
                 use_cache: bool = True):
        self.profile = profile
        self.size = int(size)
        self.spacing_mm = float(spacing_mm) if spacing_mm else profile.fov_mm / self.size
        self.operator = CTOperator.from_profile(
            profile, volume_shape=(self.size,) * 3, spacing_mm=self.spacing_mm,
            n_views=profile.coarse_views if n_views is None else n_views,
            precision=precision, device=device, window=COARSE_WINDOW,
            detector_oversample=COARSE_DETECTOR_OVERSAMPLE)
        self.use_cache = use_cache

    def __repr__(self) -> str:
        return (f"CoarseCT(profile={self.profile.name!r}, size={self.size}, "
                f"spacing_mm={self.spacing_mm!r}, n_views={self.operator.n_views}, "
                f"precision={self.operator.precision!r})")

    @property
    def matrix_cached(self) -> bool:
        """Whether the system matrix is in memory or on disk (no build needed)."""
        return "matrix" in self.__dict__ or (self.use_cache
                                             and _cache_file(self.operator).exists())

    @cached_property
    def matrix(self):
        """Exact system matrix of diffct's project+FDK, (N, N)."""
        return load_or_build_matrix(self.operator, use_cache=self.use_cache)

    def reconstruct_mu(self, mu_per_mm):
        """Noise-free FDK(project(μ)) in 1/mm, batched over leading dims."""
        import torch

        shape = mu_per_mm.shape
        flat = mu_per_mm.reshape(-1, self.size**3).to(device=self.matrix.device,
                                                       dtype=self.matrix.dtype)
        return torch.nn.functional.linear(flat, self.matrix).reshape(shape)

    @cached_property
    def noise_operators(self):
        """Sparse projector and FDK backprojector that add noise in the projection domain."""
        from fedsim_app.ctsim.coarse_noise import load_or_build_noise_operators

        return load_or_build_noise_operators(self.operator, use_cache=self.use_cache)

    def render(self, mu_per_mm, *, noise: bool = False, generator=None,
               differentiable_noise: bool = False, eps=None):
        """Coarse HU volume(s), batched over leading dims.

        With ``noise``, quantum noise at the profile's dose is drawn on the line integrals
        (P μ) and reconstructed through diffct's FDK as a sparse map: exactly
        FDK(−ln(N/I0)) of the direct path. ``eps`` fixes the Gaussian draw of the
        differentiable variant (see `fedsim_app.ctsim.simulate.add_quantum_noise`).
        """
        mu = self.reconstruct_mu(mu_per_mm)
        if noise:
            from fedsim_app.ctsim.simulate import photons_per_pixel

            mu = mu + self.noise_operators.noise_image(
                mu_per_mm, photons_per_pixel(self.profile, self.operator),
                generator=generator, differentiable=differentiable_noise, eps=eps)
        return mu_to_hu(mu, self.profile)

    __call__ = render
