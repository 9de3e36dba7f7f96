"""`CTOperator`: a circular cone-beam CT operator around diffct (tomosipo-like).

Geometry is an immutable value; the operator maps μ volumes ``(..., nz, ny, nx)`` (1/mm)
to line integrals ``(..., n_views, n_u, n_v)`` with diffct's Siddon projector, its exact
adjoint (``.T``), and diffct's FDK (cosine weights, windowed ramp filter, angular
quadrature, voxel-driven backprojection). The volume is centred on the isocentre; array
axes (z, y, x) run along world +z, +y, +x as in `fedsim_app.io.grid`.
"""

from __future__ import annotations

import math
from functools import cached_property

from fedsim_app.ctsim._diffct import quiet_diffct
from fedsim_app.ctsim.scanner import KERNEL_WINDOWS, ScannerProfile

#: Ray-plane crossings per diffct work chunk (see `CTOperator._chunks`).
RAY_PLANE_BUDGET = 1_000_000
#: The largest batch projected with our own chunks, per device type; larger batches use
#: diffct's own memory-bounded plan (its work arrays scale with batch). On a CPU, 16 covers
#: a torso scene's material indicators (about ten) in `render_physics`: at 128³ and 6
#: views a batch of 10 took 8.7 s with our chunks and 75.8 s with diffct's plan. CUDA keeps
#: 8, the setting its figures were measured with. The coarse builders' batches (256, 512)
#: use diffct's plan everywhere.
MAX_TUNED_BATCH = {"cpu": 16, "cuda": 8}


def _detector_for(profile: ScannerProfile, volume_shape, spacing_mm):
    """Detector pitch scaled to the voxel size and enough pixels to see the whole volume."""
    nz, ny, nx = volume_shape
    sz, sy, sx = spacing_mm
    scale = max(sx, sy) / profile.spacing_mm
    du, dv = (p * scale for p in profile.detector_pitch_mm)
    radius = 0.5 * math.hypot(nx * sx, ny * sy)
    if radius >= 0.95 * profile.sid_mm:
        raise ValueError("the volume reaches the source orbit; use a smaller volume")
    u_max = profile.sdd_mm * radius / math.sqrt(profile.sid_mm**2 - radius**2)
    v_max = profile.sdd_mm * 0.5 * nz * sz / (profile.sid_mm - radius)
    nu = 2 * math.ceil(u_max / du) + 2
    nv = 2 * math.ceil(v_max / dv) + 2
    return (nu, nv), (du, dv)


class CTOperator:
    """Circular cone-beam projector/backprojector and FDK (diffct, torch backend on CPU).

    Build it with the keyword-only factory `from_profile` (or the constructor, whose
    keywords the repr prints). ``precision`` is diffct's: ``"float32"`` or ``"float64"``.
    """

    def __init__(self, *, volume_shape, spacing_mm, sid_mm, sdd_mm, n_views, detector_shape,
                 detector_pitch_mm, window="ram-lak", precision="float32", device=None):
        from fedsim_app.device import default_device

        self.volume_shape = tuple(int(v) for v in volume_shape)
        sp = spacing_mm if isinstance(spacing_mm, tuple | list) else (spacing_mm,) * 3
        self.spacing_mm = tuple(float(v) for v in sp)
        self.sid_mm, self.sdd_mm = float(sid_mm), float(sdd_mm)
        self.n_views = int(n_views)
        self.detector_shape = tuple(int(v) for v in detector_shape)
        self.detector_pitch_mm = tuple(float(v) for v in detector_pitch_mm)
        if window not in KERNEL_WINDOWS.values():
            raise ValueError(f"window must be one of {sorted(KERNEL_WINDOWS.values())}")
        self.window = window
        if precision not in ("float32", "float64"):
            raise ValueError("precision must be 'float32' or 'float64'")
        self.precision = precision
        self.device = default_device() if device is None else device
        self._frozen = True

    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"CTOperator geometry is immutable (tried to set {name!r}); "
                                 "build a new operator instead")
        object.__setattr__(self, name, value)

    @classmethod
    def from_profile(cls, profile: ScannerProfile, *, volume_shape, spacing_mm, n_views=None,
                     precision="float32", device=None, window=None,
                     detector_oversample=(1, 1)) -> CTOperator:
        """The operator of ``profile`` for a centred volume of ``volume_shape``/``spacing_mm``.

        The detector's pitch follows the voxel size; ``detector_oversample`` (u, v) divides
        it (more pixels over the same extent); ``window`` overrides the profile's.
        """
        sp = spacing_mm if isinstance(spacing_mm, tuple | list) else (spacing_mm,) * 3
        (nu, nv), (du, dv) = _detector_for(profile, tuple(volume_shape), tuple(sp))
        fu, fv = detector_oversample
        return cls(volume_shape=volume_shape, spacing_mm=tuple(sp), sid_mm=profile.sid_mm,
                   sdd_mm=profile.sdd_mm,
                   n_views=profile.n_views if n_views is None else n_views,
                   detector_shape=(nu * fu, nv * fv), detector_pitch_mm=(du / fu, dv / fv),
                   window=profile.window if window is None else window,
                   precision=precision, device=device)

    # -- shapes and metadata -------------------------------------------------------
    @property
    def domain_shape(self) -> tuple[int, int, int]:
        return self.volume_shape

    @property
    def range_shape(self) -> tuple[int, int, int]:
        return (self.n_views, *self.detector_shape)

    @property
    def dtype(self):
        import torch

        return torch.float64 if self.precision == "float64" else torch.float32

    def _key(self) -> tuple:
        return (self.volume_shape, self.spacing_mm, self.sid_mm, self.sdd_mm, self.n_views,
                self.detector_shape, self.detector_pitch_mm, self.window, self.precision)

    def __eq__(self, other) -> bool:
        return isinstance(other, CTOperator) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"CTOperator(volume_shape={self.volume_shape}, spacing_mm={self.spacing_mm}, "
                f"sid_mm={self.sid_mm}, sdd_mm={self.sdd_mm}, n_views={self.n_views}, "
                f"detector_shape={self.detector_shape}, "
                f"detector_pitch_mm={self.detector_pitch_mm}, window={self.window!r}, "
                f"precision={self.precision!r})")

    # -- cached diffct objects (depend on geometry only) -----------------------------
    @cached_property
    def trajectory(self):
        """diffct's circular trajectory tensors (src, det_centre, u, v), each (n_views, 3)."""
        diffct = quiet_diffct()

        return diffct.circular_trajectory_3d(self.n_views, self.sid_mm, self.sdd_mm,
                                             device=self.device, dtype=self.dtype)

    @cached_property
    def angles(self):
        import torch

        return torch.arange(self.n_views, dtype=self.dtype, device=self.device) * (
            2 * math.pi / self.n_views)

    def _chunks(self) -> dict:
        """Work-chunk hints for diffct's portable backend.

        Its automatic plan targets 8 MiB work arrays, which on a CPU splits the detector
        into many small tiles and costs ~3x in Python overhead; we keep whole detector rows
        and bound a chunk to ~RAY_PLANE_BUDGET ray-plane crossings (tens of MB).
        """
        nu, nv = self.detector_shape
        max_rays = max(nu, RAY_PLANE_BUDGET // sum(self.volume_shape))
        views = max(1, min(self.n_views, max_rays // (nu * nv)))
        rows = nv if views > 1 else max(1, min(nv, max_rays // nu))
        return dict(view_chunk_size=views, detector_chunk_shape=(nu, rows),
                    volume_chunk_shape=self.volume_shape)

    @cached_property
    def projector(self):
        diffct = quiet_diffct()

        return diffct.Projector(self.trajectory, self.volume_shape, self.detector_shape,
                                beam="cone", detector_spacing=self.detector_pitch_mm,
                                voxel_spacing=self.spacing_mm, backend="torch",
                                precision=self.precision, **self._chunks())

    @cached_property
    def _batch_projector(self):
        """diffct's automatic (batch-aware, memory-bounded) plan, for large batches."""
        diffct = quiet_diffct()

        return diffct.Projector(self.trajectory, self.volume_shape, self.detector_shape,
                                beam="cone", detector_spacing=self.detector_pitch_mm,
                                voxel_spacing=self.spacing_mm, backend="torch",
                                precision=self.precision)

    def _projector_for(self, tensor, trailing: int):
        batch = tensor.numel() // max(1, math.prod(tensor.shape[-trailing:]))
        import torch

        limit = MAX_TUNED_BATCH.get(torch.device(self.device).type, 8)
        return self.projector if batch <= limit else self._batch_projector

    @cached_property
    def angular_weights(self):
        diffct = quiet_diffct()

        rel = self.angles.double() - self.angles[0].double()
        return diffct.angular_integration_weights(rel).to(self.dtype)

    # -- the maps ------------------------------------------------------------------
    def forward(self, mu):
        """Line integrals of μ (1/mm) along every ray: (..., nz, ny, nx) → (..., V, U, Vd)."""
        mu = mu.to(device=self.device, dtype=self.dtype)
        return self._projector_for(mu, 3).project(mu)

    __call__ = forward

    def adjoint(self, sinogram):
        """Exact adjoint (matched Siddon backprojection) of `forward`."""
        sinogram = sinogram.to(device=self.device, dtype=self.dtype)
        return self._projector_for(sinogram, 3).backproject(sinogram)

    @property
    def T(self) -> _Transposed:
        return _Transposed(self)

    def fdk_weights_kwargs(self, *, learnable=False) -> dict:
        """Keyword arguments for ``diffct.fdk`` with this geometry.

        With ``learnable`` the angular weights (identical values) carry ``requires_grad``,
        which routes diffct through its batchable autograd path (used under vmap).
        """
        aw = self.angular_weights.clone().requires_grad_(True) if learnable else None
        return dict(detector_spacing=self.detector_pitch_mm, voxel_spacing=self.spacing_mm,
                    window=self.window, pad_factor=2, angular_weights=aw, backend="torch",
                    precision=self.precision)

    def fdk(self, sinogram):
        """diffct FDK reconstruction (1/mm) of line integrals; leading dims are looped."""
        diffct = quiet_diffct()
        import torch

        sinogram = sinogram.to(device=self.device, dtype=self.dtype)
        if sinogram.ndim == 3:
            return diffct.fdk(sinogram, self.trajectory, self.volume_shape, self.angles,
                              **self.fdk_weights_kwargs())
        lead = sinogram.shape[:-3]
        flat = sinogram.reshape(-1, *sinogram.shape[-3:])
        out = torch.stack([self.fdk(s) for s in flat])
        return out.reshape(*lead, *self.volume_shape)


class _Transposed:
    """The adjoint as an operator of its own (``op.T``); ``op.T.T`` is ``op``."""

    def __init__(self, op: CTOperator):
        self._op = op

    domain_shape = property(lambda self: self._op.range_shape)
    range_shape = property(lambda self: self._op.domain_shape)
    T = property(lambda self: self._op)

    def __call__(self, sinogram):
        return self._op.adjoint(sinogram)

    forward = __call__

    def __repr__(self) -> str:
        return f"{self._op!r}.T"
