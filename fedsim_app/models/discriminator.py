"""The enhancer's discriminator: MONAI's multi-scale patch discriminator on
(CT slice, one-hot label slice)."""

from __future__ import annotations

import torch
from monai.networks.nets import MultiScalePatchDiscriminator
from torch import nn

from fedsim_app.models.enhancer import one_hot_slices


class SliceDiscriminator(nn.Module):
    """Patch discriminator conditioned on the label slice.

    Input: a slice (N, 1, H, W) in hu/1000 and its labels (N, H, W) (or label
    probabilities (N, n_classes, H, W)); the network sees the
    slice concatenated with the one-hot labels (1 + n_classes channels).

    Returns
    -------
    ``(logits, features)``: one patch-logit map per scale and, per scale, the list of
    intermediate feature maps (for the feature-matching loss).
    """

    def __init__(self, n_classes: int = 8, *, channels: int = 64, num_d: int = 2,
                 num_layers_d: int = 3, slice_size: int = 128):
        super().__init__()
        self.n_classes = int(n_classes)
        self.net = MultiScalePatchDiscriminator(
            num_d=num_d, num_layers_d=num_layers_d, spatial_dims=2, channels=channels,
            in_channels=1 + self.n_classes, out_channels=1, norm="INSTANCE",
            minimum_size_im=slice_size)

    def forward(self, image: torch.Tensor, labels: torch.Tensor):
        onehot = one_hot_slices(labels, self.n_classes, image.dtype)  # (N, C, H, W)
        return self.net(torch.cat([image, onehot], 1))
