"""The torch device, chosen once: CUDA when present, CPU otherwise.

``FEDSIM_DEVICE`` (``cpu``, ``cuda``, ``cuda:1`` …) overrides the choice.
:func:`keep_freed_memory` tunes the C allocator for long CPU inference loops.
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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest mmap threshold on 64-bit


@cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks up to 32 MiB for reuse (once per process).

    By default glibc maps large blocks afresh and returns them on free, so every
    activation of a CPU inference loop is faulted in page by page again: with the SPADE
    enhancer at 128², about 400 000 page faults and a second of system time per volume.
    Raising the mmap and trim thresholds makes those blocks come from the heap and stay
    there; the resident memory then stays at the loop's peak instead of falling between
    calls (flat over an export: ``benchmarks/export.py`` records it). Returns whether the
    allocator took the settings (False off glibc, where this does nothing).
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and \
        bool(mallopt(M_TRIM_THRESHOLD, 8 * MMAP_THRESHOLD_MAX))
