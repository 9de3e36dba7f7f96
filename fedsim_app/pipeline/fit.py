"""Turn an SSM fit into slider values."""

from __future__ import annotations

import numpy as np


def params_from_fit(ssm, fit, *, keep_offset: bool = False) -> tuple[float, ...]:
    """The 21 parameters of a ``shape.FitResult``, clamped to [-1, 1].

    The fit also returns a frame offset: where the heart sits in the source image (an
    MM-WHS scan can put it 100 mm from the SSM's centre). The Explorer shows hearts in
    the SSM's own frame, so by default the offset is dropped; ``keep_offset`` folds what
    the ±translation range can hold into the translation (``v' = s·R·(v − c) + c + t``:
    an offset adds to ``t``).
    """
    p = np.asarray(fit.params, float).copy()
    if keep_offset:
        p[17:20] += np.asarray(fit.offset_mm, float) / ssm.ranges.translation_mm
    return tuple(float(v) for v in np.clip(p, -1.0, 1.0))
