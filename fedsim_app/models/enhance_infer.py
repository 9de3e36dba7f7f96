"""Inference plan of the SPADE site enhancer: the same function as its forward, faster.

:class:`~fedsim_app.models.enhancer.SiteEnhancer` runs MONAI's SPADE residual blocks as
written for training. At inference (no gradient) most of that work can be shared or
fused without changing what is computed:

- the conditioning map is cut to each resolution level once (nearest, as MONAI's SPADE
  does inside every norm) instead of twice per block;
- the two SPADE norms of a block read the same conditioning: their ``mlp_shared``
  convolutions run as one convolution, their ``gamma``/``beta`` convolutions as one
  grouped convolution, and the instance norms of all four modulation maps as one
  ``var_mean``;
- instance norm, modulation and activation of the feature path run in place on one
  buffer (no autograd graph, no intermediate tensors);
- optional channels-last layout and bfloat16 convolutions (``dtype``; statistics and
  the residual stay in float32). bfloat16 is not bit-equal: it is tested against a
  tolerance and used only when asked for.

An enhancer whose structure is not the one planned for (a learned shortcut, another norm
or activation) is run through its own forward: :func:`plan_enhancer` returns None.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedsim_app.models.enhancer import check_levels, enhancer_output

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class _Level:
    """One SPADE residual block (two SPADE norms, two convolutions)."""

    w_shared: torch.Tensor  # (2·hidden, C, 3, 3): norm_0 then norm_1's mlp_shared
    b_shared: torch.Tensor
    slope_shared: float
    w_mod: torch.Tensor  # (4·width, hidden, 3, 3), groups=2: γ0, β0 | γ1, β1
    b_mod: torch.Tensor
    conv0: tuple[torch.Tensor, torch.Tensor]
    conv1: tuple[torch.Tensor, torch.Tensor]
    eps: float  # of the feature path's instance norms
    eps_mod: float  # of the γ/β instance norms
    slope: float  # the block's activation


class EnhancerPlan:
    """Fused inference of one :class:`SiteEnhancer` (its weights as they are now).

    Build with :func:`plan_enhancer`; call like the enhancer with ``noise`` given.

    Parameters
    ----------
    net : the enhancer (eval behaviour: it has no dropout or batch statistics)
    dtype : convolution precision, ``torch.float32`` (default) or ``torch.bfloat16``
    channels_last : run the convolutions in NHWC layout
    """

    def __init__(self, net: nn.Module, *, dtype=torch.float32, channels_last: bool = True):
        self.n_classes = net.n_classes
        self.n_down = net.n_down
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.head = self._conv(net.head)
        self.down = [(self._conv(seq[1]), float(seq[0].negative_slope)) for seq in net.down]
        self.levels = [self._level(block) for block in net.blocks]
        self.tail = self._conv(net.tail[1])
        self.tail_slope = float(net.tail[0].negative_slope)
        self.skip = (net.skip_scale.detach().float().clone(),
                     net.skip_shift.detach().float().clone())
        self.uses_levels = getattr(net, "uses_levels", False)
        self.level_shift = net.level_shift.detach().float().clone() \
            if self.uses_levels else None
        gain = getattr(net, "texture_gain", None)
        self.texture_gain = None if gain is None else gain.detach().float().clone()
        # injected noise (``noise="inject"``): its per-channel gain, added before the last block
        self.noise_gain = net.noise_gain.detach().float().clone().view(1, -1, 1, 1) \
            if getattr(net, "noise", "input") == "inject" else None

    # -- weights ---------------------------------------------------------------------
    def _w(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(self.dtype).contiguous(memory_format=self.memory_format) \
            if t.ndim == 4 else t.detach().to(self.dtype)

    def _conv(self, conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
        return self._w(conv.weight), self._w(conv.bias)

    def _level(self, block) -> _Level:
        n0, n1 = block.norm_0, block.norm_1
        shared = [n.mlp_shared.conv for n in (n0, n1)]
        mods = [m.conv for n in (n0, n1) for m in (n.mlp_gamma, n.mlp_beta)]
        return _Level(
            w_shared=self._w(torch.cat([c.weight for c in shared])),
            b_shared=self._w(torch.cat([c.bias for c in shared])),
            slope_shared=float(n0.mlp_shared.adn.A.negative_slope),
            w_mod=self._w(torch.cat([c.weight for c in mods])),
            b_mod=self._w(torch.cat([c.bias for c in mods])),
            conv0=self._conv(block.conv_0.conv), conv1=self._conv(block.conv_1.conv),
            eps=float(n0.param_free_norm.eps), eps_mod=float(n0.mlp_gamma.adn.N.eps),
            slope=float(block.activation.negative_slope))

    # -- forward ---------------------------------------------------------------------
    def _cv(self, x: torch.Tensor, wb, **kw) -> torch.Tensor:
        return F.conv2d(x.to(self.dtype), wb[0], wb[1], padding=kw.pop("padding", 1), **kw)

    def _modulation(self, seg: torch.Tensor, lv: _Level, width: int):
        """((1 + γ0, β0), (1 + γ1, β1)), each (N, width, h, w) float32, from ``seg``."""
        hidden = F.leaky_relu_(self._cv(seg, (lv.w_shared, lv.b_shared)), lv.slope_shared)
        mod = self._cv(hidden, (lv.w_mod, lv.b_mod), groups=2).float()  # (N, 4·width, h, w)
        _instance_norm_(mod, lv.eps_mod)
        g0, b0, g1, b1 = mod.split(width, 1)
        g0.add_(1.0)
        g1.add_(1.0)
        return (g0, b0), (g1, b1)

    @staticmethod
    def _spade_act_(x: torch.Tensor, gb, eps: float, slope: float) -> torch.Tensor:
        _instance_norm_(x, eps)
        return F.leaky_relu_(x.mul_(gb[0]).add_(gb[1]), slope)

    @torch.inference_mode()
    def __call__(self, coarse_up: torch.Tensor, labels: torch.Tensor, k_frac: torch.Tensor,
                 *, noise: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
        """Enhanced slices (N, 1, H, W) in hu/1000, as the enhancer's forward."""
        check_levels(self, levels, coarse_up.shape[0])
        n, _, h, w = coarse_up.shape
        if h % 2**self.n_down or w % 2**self.n_down:
            raise ValueError(f"slices of {h}x{w} cannot be halved {self.n_down} times; "
                             "use a slice size divisible by 2**n_down")
        seg = conditioning_map(coarse_up, labels, k_frac, self.n_classes)  # (N, C+2, H, W)
        seg = seg.contiguous(memory_format=self.memory_format)
        x = self._cv(torch.cat([seg, noise.to(seg.dtype)], 1), self.head).float()
        for wb, slope in self.down:
            x = self._cv(F.leaky_relu(x, slope), wb, stride=2, padding=1).float()
        width = x.shape[1]
        for i, lv in enumerate(self.levels):
            if i:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if self.noise_gain is not None and i == len(self.levels) - 1:  # the slice grid
                x = x.add_(self.noise_gain * noise.float())
            step = 2 ** (self.n_down - i)
            # nearest resampling by an integer factor keeps every step-th pixel
            seg_i = seg[:, :, ::step, ::step] if step > 1 else seg
            gb0, gb1 = self._modulation(seg_i, lv, width)
            dx = self._cv(self._spade_act_(x.clone(), gb0, lv.eps, lv.slope), lv.conv0)
            dx = self._cv(self._spade_act_(dx.float(), gb1, lv.eps, lv.slope), lv.conv1)
            x = x.add_(dx.float())
        out = self._cv(F.leaky_relu(x, self.tail_slope), self.tail).float().contiguous()
        onehot = seg[:, 1:1 + self.n_classes].float()
        return enhancer_output(coarse_up, onehot, out, self.skip, levels, self.level_shift,
                               self.texture_gain)


def _instance_norm_(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``InstanceNorm2d`` (no affine, biased variance) of (N, C, h, w), in place."""
    # two passes (mean, then the mean square of the centred values): as stable as
    # var_mean and, on CPU, several times faster than it or F.instance_norm
    x.sub_(x.mean((2, 3), keepdim=True))
    var = x.square().mean((2, 3), keepdim=True)
    return x.mul_(var.add_(eps).rsqrt_())


def conditioning_map(coarse_up: torch.Tensor, labels: torch.Tensor, k_frac: torch.Tensor,
                     n_classes: int) -> torch.Tensor:
    """The (N, n_classes + 2, H, W) conditioning of
    :func:`fedsim_app.models.enhancer.conditioning`, the one-hot written in place."""
    n, _, h, w = coarse_up.shape
    seg = coarse_up.new_zeros((n, n_classes + 2, h, w))
    seg[:, :1] = coarse_up
    seg[:, 1:1 + n_classes].scatter_(1, labels.long()[:, None], 1.0)
    seg[:, -1] = k_frac.to(seg.dtype).reshape(-1, 1, 1)
    return seg


def plan_enhancer(net, *, dtype=torch.float32, channels_last: bool = True):
    """An :class:`EnhancerPlan` of ``net``, or None when ``net`` is not a SPADE site
    enhancer of the planned structure (then its own forward runs)."""
    from fedsim_app.models.enhancer import SiteEnhancer

    if type(net) is not SiteEnhancer:
        return None
    for block in net.blocks:
        if block.learned_shortcut or not _planned_block(block):
            return None
    try:
        return EnhancerPlan(net, dtype=dtype, channels_last=channels_last)
    except (AttributeError, TypeError):
        return None


def _planned_block(block) -> bool:
    def inorm(m) -> bool:
        return isinstance(m, nn.InstanceNorm2d) and not m.affine and \
            not m.track_running_stats

    def conv3(c) -> bool:
        return isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3) and \
            c.padding == (1, 1) and c.stride == (1, 1) and c.groups == 1 and \
            c.bias is not None

    try:
        norms = (block.norm_0, block.norm_1)
        return isinstance(block.activation, nn.LeakyReLU) and \
            conv3(block.conv_0.conv) and conv3(block.conv_1.conv) and \
            len(block.conv_0) == 1 and len(block.conv_1) == 1 and \
            all(inorm(n.param_free_norm) and conv3(n.mlp_shared.conv) and
                isinstance(n.mlp_shared.adn.A, nn.LeakyReLU) and len(n.mlp_shared.adn) == 1
                and all(conv3(m.conv) and len(m.adn) == 1 and inorm(m.adn.N)
                        for m in (n.mlp_gamma, n.mlp_beta))
                for n in norms) and \
            len({float(n.param_free_norm.eps) for n in norms}) == 1 and \
            len({float(m.adn.N.eps) for n in norms for m in (n.mlp_gamma, n.mlp_beta)}) == 1 \
            and norms[0].mlp_shared.adn.A.negative_slope == \
            norms[1].mlp_shared.adn.A.negative_slope
    except AttributeError:
        return False


__all__ = ["PRECISIONS", "EnhancerPlan", "conditioning_map", "plan_enhancer"]
