"""The paper's finite-difference gradient of the shape loss through the SSM.

``--shape-grad fd``: the IoU loss of the exact (voxelized) labels is a step function of
the 21 parameters, so its gradient is taken by central differences on them, one
parameter at a time, as the paper does. The default (``soft``) differentiates the soft
occupancy by autograd instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class _FiniteDifferenceLoss(torch.autograd.Function):
    """Per-item losses (B,) of params (B, P), gradient by central differences."""

    @staticmethod
    def forward(ctx, params, item_loss, step):
        ctx.save_for_backward(params)
        ctx.item_loss, ctx.step = item_loss, step
        return item_loss(params.detach())

    @staticmethod
    def backward(ctx, grad_out):
        (params,) = ctx.saved_tensors
        h, f = ctx.step, ctx.item_loss
        grad = torch.zeros_like(params)
        for i in range(params.shape[1]):
            e = torch.zeros_like(params)
            e[:, i] = h
            # item b's loss depends on row b only: one batched call per parameter and side
            grad[:, i] = (f((params + e).detach()) - f((params - e).detach())) / (2 * h)
        return grad * grad_out[:, None], None, None


def finite_difference_loss(params: torch.Tensor, item_loss: Callable[[torch.Tensor],
                           torch.Tensor], step: float = 1e-2) -> torch.Tensor:
    """``item_loss(params)`` (B,), with d/dparams by central differences of size ``step``.

    ``item_loss`` maps detached parameters (B, P) to per-item losses (B,), each item's
    loss depending on its own row only.
    """
    return _FiniteDifferenceLoss.apply(params, item_loss, float(step))
