"""G_shape: a latent code z (32) → the 21 normalised SSM parameters in [-1, 1]."""

from __future__ import annotations

import torch
from torch import nn


def mlp_block(n_in: int, n_out: int, slope: float = 0.2) -> nn.Sequential:
    """Linear followed by LeakyReLU."""
    return nn.Sequential(nn.Linear(n_in, n_out), nn.LeakyReLU(slope))


class ShapeGenerator(nn.Module):
    """MLP ``z (B, latent_dim) → 256 → 128 → n_params``, LeakyReLU, tanh output.

    The output is the normalised parameter vector of :mod:`fedsim_app.shape.params`
    (14 mode weights, 3 rotations, 3 translations, 1 log-scale). ``log_scale`` widens
    the SSM's scale range for this network's output (``s = exp(log_scale·p)``; 0 keeps
    the SSM's own): paediatric hearts are smaller than the atlas's ±28 % reach.

    Examples
    --------
    >>> import torch
    >>> ShapeGenerator()(torch.zeros(2, 32)).shape
    torch.Size([2, 21])
    """

    def __init__(self, latent_dim: int = 32, n_params: int = 21, hidden=(256, 128), *,
                 log_scale: float = 0.0):
        super().__init__()
        self.latent_dim = int(latent_dim)
        # the SSM scale range its output is decoded in (0: the SSM's own): the output
        # means nothing without it, so every chain built with this network uses it
        # (:func:`fedsim_app.models.shape_stage.ssm_for`)
        self.log_scale = float(log_scale)
        # the SSM itself (a ShapeModel; None: the shipped atlas SSM), for a network trained
        # on an SSM from labels; checkpoints keep it beside the weights
        # (:func:`fedsim_app.models.shape_stage.generator_ssm`)
        self.ssm = None
        self.n_params = int(n_params)
        widths = (self.latent_dim, *hidden)
        self.body = nn.Sequential(*(mlp_block(a, b) for a, b in zip(widths[:-1], widths[1:],
                                                                     strict=True)))
        self.head = nn.Linear(widths[-1], self.n_params)
        # a small last layer starts every latent near the mean shape (tanh(0) = 0), so the
        # first IoU gradients are those of a sensible heart rather than a saturated one
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) → (B, n_params) in [-1, 1]."""
        return torch.tanh(self.head(self.body(z)))
