"""Whole-heart Dice through MONAI's :class:`~monai.metrics.DiceMetric`."""

from __future__ import annotations

import numpy as np
import torch


def dice_scores(pred, ref) -> np.ndarray:
    """Dice of binary masks, one per case.

    Parameters
    ----------
    pred, ref : (N, Z, Y, X) arrays or tensors, nonzero = heart

    Returns
    -------
    (N,) float64; a case whose reference and prediction are both empty scores 1, one whose
    reference is empty and prediction is not scores 0 (MONAI's ``ignore_empty=False``).
    """
    from monai.metrics import DiceMetric

    p = torch.as_tensor(np.asarray(pred) != 0 if not torch.is_tensor(pred) else pred != 0)
    r = torch.as_tensor(np.asarray(ref) != 0 if not torch.is_tensor(ref) else ref != 0)
    if p.shape != r.shape or p.ndim != 4:
        raise ValueError(f"dice_scores needs two (N, Z, Y, X) masks of one shape, got "
                         f"{tuple(p.shape)} and {tuple(r.shape)}")
    # one-hot (N, 2, Z, Y, X): background, heart; the background channel is left out
    onehot = [torch.stack([~m, m], dim=1).float() for m in (p, r)]
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=False)
    return metric(*onehot)[:, 0].double().numpy()
