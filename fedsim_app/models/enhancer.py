"""The site enhancer: a SPADE generator that turns coarse-CT slices into full CT slices.

For slice ``k`` of ``K``, the conditioning map is the concatenation of the coarse CT slice
upsampled to the label grid (1 channel), the label slice one-hot (8 channels) and a
constant ``k/K`` plane (1 channel): 10 channels. A whole volume is one batch of slices.
Image tensors are in ``hu / 1000`` (water 0, air -1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets.spade_network import SPADENetResBlock
from torch import nn

N_COND_EXTRA = 2  # the coarse slice and the k/K plane, besides the one-hot labels


def one_hot_slices(labels: torch.Tensor, n_classes: int, dtype) -> torch.Tensor:
    """(N, n_classes, H, W) of int label slices (N, H, W), or float probabilities as given."""
    if labels.is_floating_point():
        if labels.ndim != 4 or labels.shape[1] != n_classes:
            raise ValueError(f"label probabilities must be (N, {n_classes}, H, W), got "
                             f"{tuple(labels.shape)}")
        return labels.to(dtype)
    if labels.ndim != 3:
        raise ValueError(f"labels must be (N, H, W) integers, got {tuple(labels.shape)}")
    return F.one_hot(labels.long(), n_classes).permute(0, 3, 1, 2).to(dtype)  # (N, C, H, W)


def conditioning(coarse_up: torch.Tensor, labels: torch.Tensor, k_frac: torch.Tensor,
                 n_classes: int) -> torch.Tensor:
    """The (N, n_classes + 2, H, W) SPADE conditioning map.

    Parameters
    ----------
    coarse_up : (N, 1, H, W) coarse CT slices upsampled to the label grid, hu/1000
    labels : (N, H, W) int64 label slices in 0..n_classes-1, or (N, n_classes, H, W)
        float label probabilities (generated soft labels: gradients reach the shape)
    k_frac : (N,) slice position k/K in [0, 1]
    """
    if coarse_up.ndim != 4 or coarse_up.shape[1] != 1:
        raise ValueError(f"coarse_up must be (N, 1, H, W), got {tuple(coarse_up.shape)}")
    onehot = one_hot_slices(labels, n_classes, coarse_up.dtype)
    if onehot.shape[0] != coarse_up.shape[0] or onehot.shape[2:] != coarse_up.shape[2:]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match coarse_up "
                         f"{tuple(coarse_up.shape)}: expected (N, H, W)")
    plane = k_frac.reshape(-1, 1, 1, 1).to(coarse_up.dtype).expand_as(coarse_up)
    return torch.cat([coarse_up, onehot, plane], 1)


class SiteEnhancer(nn.Module):
    """SPADE generator ``(coarse_up, labels, k_frac) → CT slice`` (N, 1, H, W), hu/1000.

    The input (conditioning plus one channel of Gaussian noise, the source of the scanner's
    texture) is encoded by ``n_down`` strided convolutions, then decoded by MONAI's SPADE
    residual blocks, each modulated by the conditioning map, with ×2 upsampling between
    them. The output is a residual added to the coarse slice, so an untrained enhancer
    starts as the plain upsampled coarse CT.

    Parameters
    ----------
    n_classes : label classes (8: background and seven structures)
    width : channels of the feature maps (64 for the paper preset, 8 for tests)
    n_down : resolution levels below the slice grid
    spade_hidden : hidden channels of each SPADE modulation network

    Examples
    --------
    >>> import torch
    >>> net = SiteEnhancer(width=8, n_down=1, spade_hidden=8)
    >>> out = net(torch.zeros(3, 1, 16, 16), torch.zeros(3, 16, 16, dtype=torch.long),
    ...           torch.rand(3))
    >>> out.shape
    torch.Size([3, 1, 16, 16])
    """

    def __init__(self, n_classes: int = 8, *, width: int = 64, n_down: int = 2,
                 spade_hidden: int = 64):
        super().__init__()
        self.n_classes = int(n_classes)
        self.n_down = int(n_down)
        label_nc = self.n_classes + N_COND_EXTRA
        self.head = nn.Conv2d(label_nc + 1, width, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(width, width, 4, stride=2, padding=1))
            for _ in range(self.n_down))
        self.blocks = nn.ModuleList(
            SPADENetResBlock(spatial_dims=2, in_channels=width, out_channels=width,
                             label_nc=label_nc, spade_intermediate_channels=spade_hidden)
            for _ in range(self.n_down + 1))
        self.tail = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 3, padding=1))
        # residual starts at zero: the first enhancer is the coarse CT itself
        nn.init.zeros_(self.tail[1].weight)
        nn.init.zeros_(self.tail[1].bias)

    def forward(self, coarse_up: torch.Tensor, labels: torch.Tensor, k_frac: torch.Tensor, *,
                noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Enhanced slices (N, 1, H, W) in hu/1000.

        ``noise`` (N, 1, H, W) fixes the texture draw; when None it is drawn from
        ``generator`` (or torch's global generator).
        """
        n, _, h, w = coarse_up.shape
        if h % 2**self.n_down or w % 2**self.n_down:
            raise ValueError(f"slices of {h}x{w} cannot be halved {self.n_down} times; "
                             "use a slice size divisible by 2**n_down")
        seg = conditioning(coarse_up, labels, k_frac, self.n_classes)  # (N, C+2, H, W)
        if noise is None:
            noise = torch.randn(coarse_up.shape, generator=generator, dtype=coarse_up.dtype,
                                device=coarse_up.device)
        x = self.head(torch.cat([seg, noise], 1))
        for down in self.down:
            x = down(x)
        for i, block in enumerate(self.blocks):
            if i:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(x, seg)
        return coarse_up + self.tail(x)
