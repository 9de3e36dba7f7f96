"""diffct's own deprecation notice never reaches a FedSim user (napari showed it as a toast)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import warnings
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")  # what napari's thread workers do around a render
    import torch
    from fedsim_app.ctsim import CTOperator, load_scanner
    op = CTOperator.from_profile(load_scanner("site_a"), volume_shape=(4, 4, 4),
                                 spacing_mm=20.0, n_views=4)
    op.fdk(op(torch.zeros(4, 4, 4)))
print(sum("diffct" in str(w.message) for w in seen))
"""


def test_first_diffct_use_raises_no_deprecation_warning():
    # a fresh interpreter: diffct warns on its first import only
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0", done.stdout + done.stderr


def test_fedsim_imports_diffct_only_through_the_quiet_helper():
    bare = re.compile(r"^\s*(import diffct|from diffct)", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "fedsim_app").rglob("*.py")
                 if p.name != "_diffct.py" and bare.search(p.read_text())]
    assert offenders == []
