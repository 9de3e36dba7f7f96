"""G_material: a latent code z (32) → a coarse material map (B, 1, 16, 16, 16) in [-1, 1]."""

from __future__ import annotations

import torch
from torch import nn


def up_conv_block(n_in: int, n_out: int, scale: int, *, last: bool = False) -> nn.Sequential:
    """Nearest upsampling ×``scale``, 3³ convolution, then BatchNorm+ReLU (or tanh if last)."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=scale, mode="nearest"),
                               nn.Conv3d(n_in, n_out, 3, padding=1)]
    layers += [nn.Tanh()] if last else [nn.BatchNorm3d(n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MaterialGenerator(nn.Module):
    """3D convolutional generator of the paper's appendix.

    ``z`` as a 1³ volume of ``latent_dim`` channels → nearest ×4 → conv 256 → BN/ReLU →
    ×2 → conv 128 → BN/ReLU → ×2 → conv 1 → tanh: a ``size³`` map (``size = 16``), which
    the chain maps to attenuation at the site's effective energy.

    Examples
    --------
    >>> import torch
    >>> MaterialGenerator()(torch.zeros(2, 32)).shape
    torch.Size([2, 1, 16, 16, 16])
    """

    def __init__(self, latent_dim: int = 32, size: int = 16, widths=(256, 128)):
        super().__init__()
        if size % 16:
            raise ValueError(f"MaterialGenerator makes size 16·n maps; got size={size}")
        self.latent_dim = int(latent_dim)
        self.size = int(size)
        first = 4 * (size // 16)
        self.blocks = nn.Sequential(
            up_conv_block(latent_dim, widths[0], first),
            up_conv_block(widths[0], widths[1], 2),
            up_conv_block(widths[1], 1, 2, last=True),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) → (B, 1, size, size, size) in [-1, 1]."""
        return self.blocks(z.reshape(len(z), self.latent_dim, 1, 1, 1))  # (B, C, 1, 1, 1)
