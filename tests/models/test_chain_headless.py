"""The engine and the chain work where no GUI package can be imported at all."""

import subprocess
import sys

from engine_modules import IMPORT_ALL

BLOCK_GUI = """
import sys
class _NoGui:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'qtpy', 'napari', 'magicgui', 'PyQt5', 'PyQt6', 'vispy'}:
            raise ImportError(f'GUI package {name} is not installed here')
sys.meta_path.insert(0, _NoGui())
"""

RUN_CHAIN = IMPORT_ALL + """
import torch
from fedsim_app.models.generator import ChainConfig, Generator
from fedsim_app.pipeline import FedSimModel, PipelinePreset, SampleState
out = Generator('B', config=ChainConfig(label_size=16), device='cpu')(params=torch.zeros(1, 21))
r = FedSimModel(PipelinePreset('t', 16, 16)).render(SampleState(site='C'))
print(tuple(out.ct_hu.shape), r.ct_hu.shape)
"""


def test_engine_and_chain_run_with_gui_packages_blocked():
    out = subprocess.run([sys.executable, "-c", BLOCK_GUI + RUN_CHAIN], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(1, 16, 16, 16) (16, 16, 16)"
