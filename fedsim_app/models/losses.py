"""Losses of the model: hinge adversarial, discriminator feature matching, L1, mode
seeking, soft IoU, and an optional VGG perceptual term that needs weights on disk
(nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def hinge_d_loss(real_logits, fake_logits) -> torch.Tensor:
    """Discriminator hinge loss, averaged over scales:
    ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``."""
    terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean()
             for r, f in zip(real_logits, fake_logits, strict=True)]
    return torch.stack(terms).mean()


def hinge_g_loss(fake_logits) -> torch.Tensor:
    """Generator hinge loss ``-mean(D(fake))``, averaged over scales."""
    return torch.stack([-f.mean() for f in fake_logits]).mean()


def feature_matching_loss(real_features, fake_features) -> torch.Tensor:
    """Mean L1 between the discriminator's intermediate features of real and fake slices
    (real features are targets: no gradient flows into them)."""
    terms = [F.l1_loss(f, r.detach())
             for rs, fs in zip(real_features, fake_features, strict=True)
             for r, f in zip(rs, fs, strict=True)]
    return torch.stack(terms).mean()


def mode_seeking_loss(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``-log(mean |a - b| + eps)`` of two outputs of one generator on the same input and
    two noise draws: lower the more the draws' outputs differ (MSGAN's mode-seeking term,
    in log form so that it weighs like a log-ratio; ``eps`` bounds it when they coincide)."""
    return -torch.log((a - b).abs().mean() + eps)


def l1_loss(fake: torch.Tensor, real: torch.Tensor, *, box: int = 0) -> torch.Tensor:
    """Mean absolute difference of generated slices (N, 1, H, W) and their paired real
    slices; with ``box`` > 1, of both after a ``box``×``box`` mean filter, so that the
    real slice's noise, which the conditioning cannot predict, is not a target."""
    if box > 1:
        fake, real = (F.avg_pool2d(x, box, stride=1, padding=box // 2,
                                   count_include_pad=False) for x in (fake, real))
    return F.l1_loss(fake, real)


def soft_iou(probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-class soft IoU ``Σ p·t / Σ (p + t - p·t)``.

    Parameters
    ----------
    probs : (B, C, ...) class probabilities
    target : (B, ...) integer labels in 0..C-1, or (B, C, ...) one-hot/probabilities

    Returns
    -------
    (B, C) IoU of each class of each item (1 where both are empty).
    """
    if target.ndim == probs.ndim - 1:
        target = F.one_hot(target.long(), probs.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = tuple(range(2, probs.ndim))
    inter = (probs * target).sum(dims)
    union = (probs + target - probs * target).sum(dims)
    return (inter + eps) / (union + eps)


def soft_iou_loss(probs: torch.Tensor, target: torch.Tensor, *,
                  ignore_background: bool = True) -> torch.Tensor:
    """``1 - mean IoU`` over classes (foreground only by default) and items."""
    iou = soft_iou(probs, target)
    if ignore_background:
        iou = iou[:, 1:]
    return 1 - iou.mean()


def graph_zero(x: torch.Tensor) -> torch.Tensor:
    """A loss of 0 that keeps ``x`` in the graph (a batch with nothing to measure still
    trains on); +0 whatever the sign of ``x``'s sum, so a progress bar shows 0, not -0."""
    return x.sum() * 0 + 0.0


def structure_levels(volume: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each structure's weighted mean of coarse volumes (B, s, s, s): (B, C − 1), 0 where a
    structure is absent.

    ``weights`` (B, C, s, s, s), class 0 the background (left out): the training's
    structure-mean term uses 0/1 masks of the voxels labelled each structure
    (:func:`~fedsim_app.models.material.coarse_label_masks`); label fractions
    (:func:`~fedsim_app.models.material.label_fractions`) weigh each voxel by the share of
    it the structure fills.
    """
    w = weights[:, 1:]
    return (w * volume[:, None]).sum((2, 3, 4)) / w.sum((2, 3, 4)).clamp_min(1e-6)


def structure_mean_loss(model: torch.Tensor, real: torch.Tensor,
                        weights: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the structures' means (:func:`structure_levels`) of a
    model's coarse volume and the real one, over the structures each volume has.

    The coarse MSE weighs every voxel the same, so the heart's few voxels lose to the body
    and the background; this term asks for each structure's level directly.
    """
    present = weights[:, 1:].sum((2, 3, 4)) > 0
    diff = structure_levels(model, weights) - structure_levels(real, weights)
    return (diff[present] ** 2).mean() if present.any() else graph_zero(model)


def texture_sd(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SD of the high-pass residual ``x − box₃(x)`` of slices ``x`` (N, 1, H, W), or of
    slabs of contiguous slices (B, 1, K, H, W) with a 3×3×3 box, over ``mask`` (same
    shape) in {0, 1}; 1e-6 for an empty or flat one (a log stays finite)."""
    pool = F.avg_pool3d if x.dim() == 5 else F.avg_pool2d
    r = x - pool(x, 3, stride=1, padding=1, count_include_pad=False)
    n = mask.sum().clamp_min(1)
    mean = (r * mask).sum() / n
    return (((r - mean) ** 2 * mask).sum() / n + 1e-12).sqrt()


def interior_volumes(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(B, n_classes − 1, K, H, W) masks of each heart structure's 3-D-eroded interior (its
    voxels whose 3×3×3 neighbourhood is all that structure) in hard ``labels`` (B, K, H, W)."""
    onehot = F.one_hot(labels.long(), n_classes).movedim(-1, 1)[:, 1:].float()
    return -F.max_pool3d(-onehot, 3, stride=1, padding=1)  # a min filter


def interior_3d(labels: torch.Tensor, slices, n_classes: int) -> torch.Tensor:
    """(N, n_classes − 1, H, W): :func:`interior_volumes` in the axial ``slices``, rows
    volume-major as the enhancer's conditioning."""
    ks = torch.as_tensor(slices, device=labels.device).long()
    inner = interior_volumes(labels, n_classes)[:, :, ks]
    return inner.movedim(2, 1).reshape(-1, n_classes - 1, *labels.shape[-2:])


def texture_loss(fake: torch.Tensor, real: torch.Tensor, onehot: torch.Tensor | None, *,
                 min_pixels: int = 16, interior: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over heart structures of ``(log sd_fake − log sd_real)²``: each structure's
    texture SD (:func:`texture_sd`) inside its eroded interior (3×3), over a batch of
    paired slices (N, 1, H, W); ``onehot`` (N, C, H, W), class 0 the background (left
    out). A structure with fewer than ``min_pixels`` interior pixels in the batch is left
    out; none left, 0. ``interior`` (N, C − 1, H, W) replaces the 2-D-eroded masks (e.g.
    :func:`interior_3d`; ``onehot`` is then not read and may be None); with slabs
    ``fake``, ``real`` (B, 1, K, H, W) and ``interior`` (B, C − 1, K, H, W)
    (:func:`interior_volumes`) the texture is measured in 3-D.

    Not in the paper. The L1 term pulls the enhancer toward the mean of what a label map
    allows, the adversarial terms toward texture without a level; this term asks each
    structure's texture to be as strong as the real slice's, no stronger.
    """
    if interior is None:
        heart = (onehot[:, 1:] > 0.5).to(fake.dtype)
        interior = -F.max_pool2d(-heart, 3, stride=1, padding=1)  # min filter
    terms = []
    for c in range(interior.shape[1]):
        m = interior[:, c:c + 1]
        if float(m.sum()) < min_pixels:
            continue
        terms.append((torch.log(texture_sd(fake, m)) - torch.log(texture_sd(real, m))) ** 2)
    return torch.stack(terms).mean() if terms else graph_zero(fake)


# VGG-19 convolution widths up to relu5_1 ("M" = max pool), in torchvision's layer order so
# that a torchvision state dict (keys "features.<i>.weight") loads into it unchanged.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
_TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
_TAP_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # as in pix2pixHD / SPADE


class VGGPerceptualLoss(nn.Module):
    """GauGAN's VGG-19 feature loss, from weights the user has on disk.

    Parameters
    ----------
    weights_path : a torch state dict of torchvision's ``vgg19().features`` or of the
        whole ``vgg19()`` (keys ``features.N.weight``); loaded with ``weights_only=True``
    """

    def __init__(self, weights_path: str | Path):
        super().__init__()
        layers: list[nn.Module] = []
        n_in = 3
        for spec in _VGG19:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(n_in, spec, 3, padding=1), nn.ReLU()]
                n_in = spec
        self.features = nn.Sequential(*layers)
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"VGG weights {path} not found: point --vgg-weights to a "
                                    "local torchvision vgg19 state dict, or leave it out")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items()
                 if k.startswith("features.") or k[0].isdigit()}
        try:
            self.features.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a VGG-19 features state dict ({exc})") from None
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor):
        # hu/1000 in about [-1, 1] → a grey image in [0, 1], repeated to 3 channels
        x = ((x.clamp(-1, 1) + 1) / 2).expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
        return out

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        terms = [w * F.l1_loss(f, r.detach()) for w, f, r in
                 zip(_TAP_WEIGHTS, self._taps(fake), self._taps(real), strict=True)]
        return torch.stack(terms).sum()
