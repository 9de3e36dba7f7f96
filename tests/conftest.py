"""Session-wide test setup: FedSim's cache is a temporary folder.

The engine caches what it builds (coarse CT system matrices, 64 MB each at 16³; population
shape models; napari sample cases) under ``~/.cache/fedsim`` unless ``FEDSIM_CACHE`` says
otherwise. A test run must not fill the user's cache, so the whole session points
``FEDSIM_CACHE`` at a temporary folder, set before any test module is imported and removed
at the end. Tests that build something large use small grids so that building it each run
stays cheap (e.g. the 8³ coarse grid of tests/pipeline).
"""

from __future__ import annotations

import os
import shutil
import tempfile

_SAVED = {}


def pytest_configure(config):
    _SAVED["FEDSIM_CACHE"] = os.environ.get("FEDSIM_CACHE")
    _SAVED["dir"] = tempfile.mkdtemp(prefix="fedsim-test-cache-")
    os.environ["FEDSIM_CACHE"] = _SAVED["dir"]


def pytest_unconfigure(config):
    if _SAVED.get("FEDSIM_CACHE") is None:
        os.environ.pop("FEDSIM_CACHE", None)
    else:
        os.environ["FEDSIM_CACHE"] = _SAVED["FEDSIM_CACHE"]
    if _SAVED.get("dir"):
        shutil.rmtree(_SAVED["dir"], ignore_errors=True)
