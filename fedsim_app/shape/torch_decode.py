"""Differentiable decoding of the 21 parameters in torch (same maths as ``ShapeModel.decode``)."""

from __future__ import annotations

import numpy as np
import torch

from fedsim_app.shape.params import N_MODES

_CACHE: dict[tuple[int, torch.dtype, str], tuple[object, tuple]] = {}


def model_tensors(model, dtype=torch.float64, device="cpu"):
    """``(mean (V, 3), modes (3V, 14), bounds (14,), center (3,))`` as torch tensors."""
    key = (id(model), dtype, str(device))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    t = (
        torch.as_tensor(model.mean, dtype=dtype, device=device),
        torch.as_tensor(np.ascontiguousarray(model.modes[:, :N_MODES]), dtype=dtype,
                        device=device),
        torch.as_tensor(model.mode_bounds(), dtype=dtype, device=device),
        torch.as_tensor(model.center_mm, dtype=dtype, device=device),
    )
    _CACHE[key] = (model, t)
    return t


def euler_to_matrix_torch(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3) angles → (B, 3, 3) rotations ``Rz·Ry·Rx``."""
    a, b, g = angles.unbind(-1)
    ca, sa, cb, sb, cg, sg = a.cos(), a.sin(), b.cos(), b.sin(), g.cos(), g.sin()
    # closed form of Rz(g) @ Ry(b) @ Rx(a)
    rows = [
        torch.stack([cg * cb, cg * sb * sa - sg * ca, cg * sb * ca + sg * sa], -1),
        torch.stack([sg * cb, sg * sb * sa + cg * ca, sg * sb * ca - cg * sa], -1),
        torch.stack([-sb, cb * sa, cb * ca], -1),
    ]
    return torch.stack(rows, -2)


def decode_torch(model, params: torch.Tensor) -> torch.Tensor:
    """(B, 21) or (21,) parameters in [-1, 1] → (B, V, 3) (or (V, 3)) vertices, world mm.

    Parameters are clamped to ``[-1, 1]`` as in the numpy decode; feed ``tanh(u)`` to
    keep gradients alive everywhere.
    """
    single = params.ndim == 1
    p = params.reshape(-1, params.shape[-1]).clamp(-1.0, 1.0)
    mean, modes, bounds, center = model_tensors(model, p.dtype, p.device)
    r = model.ranges
    b = p[:, :N_MODES] * bounds  # (B, 14)
    shape = mean + (b @ modes.T).reshape(len(p), -1, 3)  # (B, V, 3)
    rot = euler_to_matrix_torch(p[:, 14:17] * r.rotation_rad)  # (B, 3, 3)
    trans = p[:, 17:20] * r.translation_mm
    scale = torch.exp(p[:, 20] * r.log_scale)[:, None, None]
    out = scale * (shape - center) @ rot.transpose(1, 2) + center + trans[:, None, :]
    return out[0] if single else out


__all__ = ["decode_torch", "euler_to_matrix_torch", "model_tensors"]
