"""The site enhancer: a SPADE generator that turns coarse-CT slices into full CT slices.

For slice ``k`` of ``K``, the conditioning map is the concatenation of the coarse CT slice
upsampled to the label grid (1 channel), the label slice one-hot (8 channels) and a
constant ``k/K`` plane (1 channel): 10 channels. A whole volume is one batch of slices.
Image tensors are in ``hu / 1000`` (water 0, air -1).

**Where a structure's level comes from (a departure from the paper).** The paper's
generator outputs the slice outright. Ours splits it: a label-wise affine skip sets each
labelled structure's level, ``scale_c · coarse + shift_c`` for structure ``c`` (one pair
per label, fitted by least squares to the labelled volumes: :func:`fit_label_skip`), and
the SPADE network adds the rest, centred inside every heart structure of every slice so
that it carries texture and shape, not the level. Measured on the default model
(docs/benchmarks.md, issue 9): the network left to find the levels itself landed 113-248
HU off in the worst structure (sites A/B/C; B's small structures, whose coarse CT is
blurred 200-460 HU too dark, the worst), worse than painting each structure with its mean
over the labelled volumes (33/55/89 HU); four to six labelled volumes did not teach it
more. With the skip: 34/68/82 HU (31/56/83 once the material loss gained its
structure-mean term, 29/60/84 with that term over the voxels labelled each structure).
At B and C that is about the labels' mean: a small structure's level in a 16³ coarse CT
of a child's chest is mostly its surroundings. The background (label 0) keeps the
network's full output: lungs and body outline are its work.

**Levels from the coarse CT (opt-in, ``levels="coarse"``).** The skip reads each voxel's
coarse value, which in a small structure follows the blur of its neighbours more than the
structure's own contrast. With ``levels="coarse"`` a heart structure's level is instead
one number per volume: the coarse CT's mean over the coarse voxels the structure fills
(:func:`fedsim_app.models.enhance.structure_levels_of`), plus a per-structure shift
(``level_shift``, fitted by :meth:`SiteEnhancer.fit_levels`: the mean gap to the real
volumes' structure means). Trained with it (docs/benchmarks.md, 2026-12-05 03:13;
the shift calibrated again at the end on latents refitted as held-out ones are), the
worst structure's level error at A / B / C fell from 36 / 51-55 / 35-37 HU to 27 / 33-35
/ 22-23. The coarse CT of a held-out volume comes from a latent fitted to it; weighing the
coarse structure means 10x in that fit (``refit_smean``) took B's worst structure, the
pulmonary artery, from 36 to 22 HU, what the real volume's own coarse levels give
(docs/benchmarks.md, 2026-12-06 02:45).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets.spade_network import SPADENetResBlock
from torch import nn

N_COND_EXTRA = 2  # the coarse slice and the k/K plane, besides the one-hot labels
LEVELS = ("skip", "coarse")  # where the heart structures' levels come from
NOISE = ("input", "inject")  # where the texture noise enters (SiteEnhancer)
NOISE_GAIN0 = 0.1  # the injected noise's starting gain per channel


def label_skip(coarse_up: torch.Tensor, onehot: torch.Tensor, scale: torch.Tensor,
               shift: torch.Tensor) -> torch.Tensor:
    """``Σ_c onehot_c · (scale_c · coarse_up + shift_c)``: (N, 1, H, W) from coarse
    slices (N, 1, H, W) and label one-hot or probabilities (N, C, H, W)."""
    per_class = scale.reshape(1, -1, 1, 1) * coarse_up + shift.reshape(1, -1, 1, 1)
    return (onehot * per_class).sum(1, keepdim=True)


def level_skip(coarse_up: torch.Tensor, onehot: torch.Tensor, scale: torch.Tensor,
               shift: torch.Tensor, levels: torch.Tensor | None = None,
               level_shift: torch.Tensor | None = None) -> torch.Tensor:
    """The enhancer's level (N, 1, H, W): :func:`label_skip`, or with ``levels`` (N, C),
    one level per row and structure, each heart structure at ``levels_c + level_shift_c``
    (the background keeps the skip)."""
    if levels is None:
        return label_skip(coarse_up, onehot, scale, shift)
    background = onehot[:, :1] * (scale[0] * coarse_up + shift[0])
    heart = (levels[:, 1:] + level_shift[1:]).to(onehot.dtype)[:, :, None, None]
    return background + (onehot[:, 1:] * heart).sum(1, keepdim=True)


def enhancer_output(coarse_up: torch.Tensor, onehot: torch.Tensor, resid: torch.Tensor,
                    skip: tuple[torch.Tensor, torch.Tensor], levels: torch.Tensor | None,
                    level_shift: torch.Tensor | None,
                    texture_gain: torch.Tensor | None) -> torch.Tensor:
    """The enhancer's slices (N, 1, H, W) from the network's residual ``resid`` (N, 1, H, W):
    the level (:func:`level_skip`) plus the residual centred in each heart structure
    (:func:`centre_in_structures`), there scaled by the structure's ``texture_gain``
    (C,) when given (the background's entry is not used)."""
    resid = centre_in_structures(resid, onehot)
    if texture_gain is not None:
        gain = onehot[:, :1] + (onehot[:, 1:] * texture_gain[1:].to(onehot.dtype).view(
            1, -1, 1, 1)).sum(1, keepdim=True)
        resid = resid * gain
    return level_skip(coarse_up, onehot, *skip, levels, level_shift) + resid


def centre_in_structures(resid: torch.Tensor, onehot: torch.Tensor,
                         eps: float = 1e-6) -> torch.Tensor:
    """``resid`` (N, 1, H, W) less its mean over each heart structure (labels 1..C-1) of
    each slice, weighted by ``onehot`` (N, C, H, W); the background keeps its values."""
    heart = onehot[:, 1:]
    area = heart.sum((2, 3), keepdim=True).clamp_min(eps)
    mean = (heart * resid).sum((2, 3), keepdim=True) / area
    return resid - (heart * mean).sum(1, keepdim=True)


@torch.no_grad()
def fit_label_skip(coarse_up: torch.Tensor, real: torch.Tensor, labels: torch.Tensor,
                   n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares ``(scale, shift)`` (n_classes,) of ``real ≈ scale_c·coarse_up + shift_c``
    over the voxels of each label ``c``, every volume weighing the same.

    Parameters
    ----------
    coarse_up, real : (B, K, H, W) float, the coarse CT upsampled and the real volume
    labels : (B, K, H, W) int

    A label absent from every volume keeps (1, 0) (the coarse CT as it is); one whose
    coarse values do not vary gets scale 0 and the real mean.
    """
    b = len(labels)
    x = coarse_up.reshape(b, -1).double()
    y = real.reshape(b, -1).double()
    lab = labels.reshape(b, -1).long()
    # (volume, class) bins
    offs = (torch.arange(b, device=lab.device)[:, None] * n_classes + lab).reshape(-1)

    def per_volume_mean(v):  # (B, C): the mean of v over each label of each volume
        s = torch.bincount(offs, weights=v.reshape(-1), minlength=b * n_classes)
        return s.reshape(b, n_classes)

    count = torch.bincount(offs, minlength=b * n_classes).reshape(b, n_classes).double()
    present = count > 0
    means = [per_volume_mean(v) / count.clamp_min(1) for v in (x, y, x * x, x * y)]
    n_vol = present.sum(0).clamp_min(1)
    ex, ey, exx, exy = ((m * present).sum(0) / n_vol for m in means)
    var, cov = exx - ex * ex, exy - ex * ey
    varies = var > 1e-12
    scale = torch.where(varies, cov / var.clamp_min(1e-12), torch.zeros_like(var))
    shift = ey - scale * ex
    seen = present.any(0)
    scale = torch.where(seen, scale, torch.ones_like(scale))
    shift = torch.where(seen, shift, torch.zeros_like(shift))
    return scale.float(), shift.float()


@torch.no_grad()
def fit_level_shift(levels: torch.Tensor, real: torch.Tensor, labels: torch.Tensor,
                    n_classes: int) -> torch.Tensor:
    """(n_classes,) mean over volumes of ``real``'s mean over each label less ``levels``
    (B, n_classes), over the volumes holding the label (0 where none does).

    Parameters
    ----------
    levels : (B, n_classes) each volume's structure levels, hu/1000
    real : (B, K, H, W) float, the real volumes, hu/1000
    labels : (B, K, H, W) int
    """
    b = len(labels)
    lab = labels.reshape(b, -1).long()
    offs = (torch.arange(b, device=lab.device)[:, None] * n_classes + lab).reshape(-1)
    total = torch.bincount(offs, weights=real.reshape(-1).double(),
                           minlength=b * n_classes).reshape(b, n_classes)
    count = torch.bincount(offs, minlength=b * n_classes).reshape(b, n_classes).double()
    present = count > 0
    gap = torch.where(present, total / count.clamp_min(1) - levels.double(), 0.0)
    return (gap.sum(0) / present.sum(0).clamp_min(1)).float()


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
    them. The output is the label-wise skip (``skip_scale``, ``skip_shift``: buffers,
    fitted by :meth:`fit_skip`, see the module notes) plus that residual, centred inside
    each heart structure of each slice. An untrained enhancer (scale 1, shift 0, a zero
    last convolution) is the plain upsampled coarse CT.

    Parameters
    ----------
    n_classes : label classes (8: background and seven structures)
    width : channels of the feature maps (64 for the paper preset, 8 for tests)
    n_down : resolution levels below the slice grid
    spade_hidden : hidden channels of each SPADE modulation network
    levels : ``"skip"`` (heart structures' levels from the label-wise skip) or
        ``"coarse"`` (from per-volume structure levels given to :meth:`forward`, plus the
        buffer ``level_shift``; see the module notes)
    texture_gain : keep a buffer ``texture_gain`` (C,): the centred residual in each
        heart structure times its entry, calibrated after training so that the texture
        of the labelled volumes matches the real one where it can be measured
        (:func:`fedsim_app.train.calibrate.texture_gains`); all ones, the enhancer is as
        without it
    noise : ``"input"`` (the noise channel enters with the conditioning only, the
        paper's) or ``"inject"`` (the same draw is also added to the features before the
        last block, scaled by the learnt per-channel ``noise_gain``, StyleGAN's noise
        input: trained, the ``"input"`` channel ended ignored, docs/benchmarks.md
        2026-12-05 21:14)

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
                 spade_hidden: int = 64, levels: str = "skip", noise: str = "input",
                 texture_gain: bool = False):
        super().__init__()
        if levels not in LEVELS:
            raise ValueError(f"levels must be one of {', '.join(LEVELS)}, got {levels!r}")
        if noise not in NOISE:
            raise ValueError(f"noise must be one of {', '.join(NOISE)}, got {noise!r}")
        self.noise = noise
        self.levels = levels
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
        self.register_buffer("skip_scale", torch.ones(self.n_classes))
        self.register_buffer("skip_shift", torch.zeros(self.n_classes))
        if noise == "inject":  # only then: an "input" enhancer's state dict is as before
            self.noise_gain = nn.Parameter(torch.full((width,), NOISE_GAIN0))
        if levels == "coarse":  # only then: a "skip" enhancer's state dict is as before
            self.register_buffer("level_shift", torch.zeros(self.n_classes))
        if texture_gain:  # only then: the state dict of an enhancer without it is as before
            self.register_buffer("texture_gain", torch.ones(self.n_classes))

    @property
    def uses_levels(self) -> bool:
        """Whether :meth:`forward` needs the volumes' structure levels."""
        return self.levels == "coarse"

    def fit_skip(self, coarse_up: torch.Tensor, real: torch.Tensor,
                 labels: torch.Tensor) -> None:
        """Fit the label-wise skip to volumes (B, K, H, W): the coarse CT upsampled to the
        label grid and the real volume (hu/1000), and their labels (:func:`fit_label_skip`)."""
        scale, shift = fit_label_skip(coarse_up, real, labels, self.n_classes)
        self.skip_scale.copy_(scale)
        self.skip_shift.copy_(shift)

    def fit_levels(self, levels: torch.Tensor, real: torch.Tensor,
                   labels: torch.Tensor) -> None:
        """Fit ``level_shift`` (``levels="coarse"``) from volumes' structure levels (B, C)
        and the real volumes (B, K, H, W) hu/1000 with their labels
        (:func:`fit_level_shift`)."""
        self.level_shift.copy_(fit_level_shift(levels, real, labels, self.n_classes))

    def forward(self, coarse_up: torch.Tensor, labels: torch.Tensor, k_frac: torch.Tensor, *,
                noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None,
                levels: torch.Tensor | None = None) -> torch.Tensor:
        """Enhanced slices (N, 1, H, W) in hu/1000.

        ``noise`` (N, 1, H, W) fixes the texture draw; when None it is drawn from
        ``generator`` (or torch's global generator). ``levels`` (N, C): each row's volume's
        structure levels in hu/1000, needed with ``levels="coarse"`` and only then
        (:func:`fedsim_app.models.enhance.level_inputs` builds them).
        """
        check_levels(self, levels, coarse_up.shape[0])
        n, _, h, w = coarse_up.shape
        if h % 2**self.n_down or w % 2**self.n_down:
            raise ValueError(f"slices of {h}x{w} cannot be halved {self.n_down} times; "
                             "use a slice size divisible by 2**n_down")
        seg = conditioning(coarse_up, labels, k_frac, self.n_classes)  # (N, C+2, H, W)
        if noise is None:
            # drawn where the generator lives (a CPU generator keeps a GPU run's draws
            # the CPU's, and its state in the checkpoint), then moved to the slices
            noise = torch.randn(coarse_up.shape, generator=generator, dtype=coarse_up.dtype,
                                device=coarse_up.device if generator is None
                                else generator.device).to(coarse_up.device)
        x = self.head(torch.cat([seg, noise], 1))
        for down in self.down:
            x = down(x)
        for i, block in enumerate(self.blocks):
            if i:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if self.noise == "inject" and i == len(self.blocks) - 1:  # at the slice grid
                x = x + self.noise_gain.view(1, -1, 1, 1) * noise
            x = block(x, seg)
        onehot = seg[:, 1:1 + self.n_classes]
        return enhancer_output(coarse_up, onehot, self.tail(x),
                               (self.skip_scale, self.skip_shift), levels,
                               getattr(self, "level_shift", None),
                               getattr(self, "texture_gain", None))


def check_levels(net, levels: torch.Tensor | None, n_rows: int) -> None:
    """Refuse ``levels`` an enhancer ``net`` does not use, or a missing or misshapen one."""
    if not getattr(net, "uses_levels", False):
        if levels is not None:
            raise ValueError("this enhancer takes its levels from the skip "
                             '(levels="skip"); do not pass levels')
        return
    if levels is None or tuple(levels.shape) != (n_rows, net.n_classes):
        got = None if levels is None else tuple(levels.shape)
        raise ValueError(f'an enhancer with levels="coarse" needs levels ({n_rows}, '
                         f"{net.n_classes}), one row per slice; got {got}")
