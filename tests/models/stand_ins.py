"""Tiny stand-ins of the networks with the agreed signatures (tests only): they prove the
chain calls a module with the right shapes and that gradients reach z through it."""

import torch
from torch import nn


class TinyShape(nn.Module):
    """z (B, 32) → params (B, 21) in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(32, 21)
        nn.init.normal_(self.lin.weight, std=0.01)
        nn.init.zeros_(self.lin.bias)

    def forward(self, z):
        assert z.ndim == 2 and z.shape[1] == 32
        return torch.tanh(self.lin(z))


class TinyMaterial(nn.Module):
    """(z (B, 32), labels (B, n, n, n) or (B, 8, n, n, n)) → material (B, 1, 16, 16, 16)
    in [-1, 1] (the labels are checked, not used)."""

    def __init__(self, size=16):
        super().__init__()
        self.size = size
        self.lin = nn.Linear(32, size**3)
        nn.init.normal_(self.lin.weight, std=0.01)

    def forward(self, z, labels):
        assert z.ndim == 2 and z.shape[1] == 32 and len(labels) == len(z)
        return torch.tanh(self.lin(z)).reshape(len(z), 1, self.size, self.size, self.size)


class RecordingEnhancer(nn.Module):
    """(coarse_up (N, 1, H, W), labels (N, H, W) int64, k_frac (N,)) → (N, 1, H, W):
    adds a learnt offset per label class, and records what it was given."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(8))
        self.calls = []

    def forward(self, coarse_up, labels, k_frac):
        self.calls.append((tuple(coarse_up.shape), coarse_up.dtype, tuple(labels.shape),
                           labels.dtype, k_frac.detach().cpu().clone()))
        return coarse_up + self.offset[labels][:, None]
