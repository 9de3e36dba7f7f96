"""The engine must import and run without any GUI stack (STYLE.md §1)."""

import subprocess
import sys

from engine_modules import IMPORT_ALL

GUI_MODULES = ("qtpy", "napari", "magicgui", "PyQt5", "PyQt6", "superqt")


def test_import_engine_leaves_gui_unloaded():
    code = (
        "import sys\n" + IMPORT_ALL +
        f"bad = [m for m in {GUI_MODULES!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine modules pulled in GUI packages: {out.stdout}"
