"""G_material: a latent code z (32) and the labels → a coarse material map (B, 1, 16³).

The paper's generator (appendix §3) turns ``z`` alone into the 16³ map: ``z`` as a 1³
volume of 32 channels → nearest ×4 → conv 256 → BN/ReLU → ×2 → conv 128 → BN/ReLU → ×2 →
conv 1 → tanh. Two measured limits of that design (docs/benchmarks.md, issue 9) made us
change it in two places:

- **A learnt first ×4.** Nearest ×4 copies ``z`` to all 64 positions, so after zero-padded
  3³ convolutions the centre of the map can vary only through the padding: at 4³ the two
  inner positions of each axis are equal, and the centre 2³ of the 16³ output stays one
  value. The heart sits in the centre. The first ×4 is here a learnt projection (a
  transposed convolution from 1³ to 4³, kernel 4: one linear map, no overlapping strides,
  so none of the checkerboard the paper avoided). Site B's six labelled volumes, 200
  steps: coarse MSE 0.068 → 0.004.
- **The labels place the heart's materials.** A map from ``z`` alone must also *place* a
  small heart, and a latent fitted to a held-out volume does not (site B, worst structure
  340 HU). The chain is shape → labels → material, so the material stage reads the labels:
  each coarse voxel is the mix of its structures' materials and of its surroundings',

  ``m = f₀ · surroundings(z) + Σ_c f_c · v_c(z)``,

  ``f_c`` the fraction of the voxel's block that label ``c`` fills, ``v_c(z)`` a per-structure
  material (an MLP head on ``z``, tanh) and ``surroundings(z)`` the paper's convolutional
  map (lung, body, bone: what the labels do not name). Held out on site B: 340 → 124 HU
  (``benchmarks/material_fit.py``).

Without a material generator the chain uses Fix-Mat, the same mix with the atlas table for
``v`` and soft tissue around the heart (:func:`~fedsim_app.models.material.fix_mat`).
"""

from __future__ import annotations

import torch
from torch import nn

from fedsim_app.models.material import label_fractions
from fedsim_app.models.shape_stage import N_CLASSES


def up_conv_block(n_in: int, n_out: int, scale: int, *, last: bool = False) -> nn.Sequential:
    """Nearest upsampling ×``scale``, 3³ convolution, then BatchNorm+ReLU (or tanh if last)."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=scale, mode="nearest"),
                               nn.Conv3d(n_in, n_out, 3, padding=1)]
    layers += [nn.Tanh()] if last else [nn.BatchNorm3d(n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MaterialGenerator(nn.Module):
    """G_material: ``(z (B, latent_dim), labels) → (B, 1, size, size, size)`` in [-1, 1].

    Parameters
    ----------
    latent_dim : length of z
    size : the material grid (16·k)
    widths : channels of the surroundings network's two hidden convolutions
    head_width : hidden units of the per-structure material head

    Examples
    --------
    >>> import torch
    >>> g = MaterialGenerator()
    >>> labels = torch.zeros(2, 32, 32, 32, dtype=torch.long)
    >>> g(torch.zeros(2, 32), labels).shape
    torch.Size([2, 1, 16, 16, 16])
    """

    def __init__(self, latent_dim: int = 32, size: int = 16, widths=(256, 128),
                 head_width: int = 64):
        super().__init__()
        if size % 16:
            raise ValueError(f"MaterialGenerator makes size 16·n maps; got size={size}")
        self.latent_dim = int(latent_dim)
        self.size = int(size)
        first = 4 * (size // 16)
        self.surroundings = nn.Sequential(
            # learnt 1³ → first³ projection (the paper: nearest ×4, see the module notes)
            nn.Sequential(nn.ConvTranspose3d(latent_dim, widths[0], first),
                          nn.BatchNorm3d(widths[0]), nn.ReLU()),
            up_conv_block(widths[0], widths[1], 2),
            up_conv_block(widths[1], 1, 2, last=True),
        )
        self.structures = nn.Sequential(
            nn.Linear(latent_dim, head_width), nn.LeakyReLU(0.2),
            nn.Linear(head_width, N_CLASSES - 1), nn.Tanh())

    def parts(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(surroundings (B, 1, s, s, s), structure materials (B, 7))``, both in [-1, 1]."""
        grid = self.surroundings(z.reshape(len(z), self.latent_dim, 1, 1, 1))
        return grid, self.structures(z)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The material map of latents ``z`` (B, latent_dim) over ``labels``: hard
        (B, n, n, n) int64 or probabilities (B, 8, n, n, n) (differentiable in them),
        ``size`` dividing n."""
        surroundings, values = self.parts(z)
        # (B, 8, s, s, s); soft labels keep their dtype
        frac = label_fractions(labels, self.size, surroundings.dtype).to(surroundings.dtype)
        heart = torch.einsum("bczyx,bc->bzyx", frac[:, 1:], values)[:, None]
        return frac[:, :1] * surroundings + heart
