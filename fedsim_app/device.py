"""The torch device, chosen once: CUDA when present, CPU otherwise.

``FEDSIM_DEVICE`` (``cpu``, ``cuda``, ``cuda:1`` …) overrides the choice.
"""

from __future__ import annotations

import os
from functools import cache


@cache
def default_device():
    import torch

    wanted = os.environ.get("FEDSIM_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
