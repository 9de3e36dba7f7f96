"""The pipeline renders with no GUI library loaded (the engine never imports Qt/napari)."""

from __future__ import annotations

import subprocess
import sys


def test_render_imports_no_gui_modules():
    code = (
        "import sys\n"
        "from fedsim_app.pipeline import FedSimModel, PipelinePreset, SampleState\n"
        "FedSimModel(PipelinePreset('t', 16, 16)).render(SampleState())\n"
        "bad = [m for m in ('qtpy', 'napari', 'magicgui', 'vispy', 'PyQt5') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"
