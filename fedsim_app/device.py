"""The torch device, chosen once: CUDA when present, CPU otherwise.

``FEDSIM_DEVICE`` (``cpu``, ``cuda``, ``cuda:1`` …) overrides the choice;
:func:`resolve_device` reads a ``--device`` option.
:func:`keep_freed_memory` tunes the C allocator for long CPU inference loops.
:func:`seeded` makes a seeded draw without moving the caller's random state.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache


@cache
def default_device():
    import torch

    wanted = os.environ.get("FEDSIM_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | None = "auto"):
    """The torch device a ``--device`` option names: ``auto`` (or None) is
    :func:`default_device`; ``cpu``, ``cuda``, ``cuda:N`` as torch reads them.

    Raises
    ------
    FedSimError
        for a name torch does not read, another kind of device, or a CUDA device this
        machine does not have, saying what to use instead
    """
    import torch

    from fedsim_app.errors import FedSimError

    if name is None or name == "auto":
        return default_device()
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise FedSimError(f"--device {name!r}: not a torch device; use auto, cpu or "
                          "cuda[:N]") from None
    if dev.type not in ("cpu", "cuda"):
        raise FedSimError(f"--device {name}: FedSim runs on cpu or cuda[:N]")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FedSimError(f"--device {name}: torch sees no CUDA GPU here — use cpu or auto")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise FedSimError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA "
                          "GPU(s) here — use cuda:0 or auto")
    return dev


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


@contextlib.contextmanager
def seeded(seed: int, device=None):
    """torch's global generator seeded with ``seed`` inside the block and restored after
    it: the CPU's, and ``device``'s too when that is a CUDA device. A seeded draw (an
    enhancer's texture, a classifier's start) then repeats without moving the random
    state of the code around it."""
    import torch

    cuda = device is not None and torch.device(device).type == "cuda"
    with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        torch.manual_seed(seed)
        yield
