"""The model never reads the world: no anatomy, cohort or full-render code behind it.

The world (``fedsim_app.anatomy`` torso and hearts, ``fedsim_app.cohort``, the full
``ctsim.render_fast``/``render_physics``) only writes the virtual cohort; the model
(``fedsim_app.models``, ``fedsim_app.pipeline``) learns from datasets on disk.
"""

import ast
import subprocess
import sys
from pathlib import Path

import fedsim_app

WORLD_MODULES = ("fedsim_app.anatomy", "fedsim_app.cohort", "fedsim_app.ctsim.render")
WORLD_NAMES = {"render_fast", "render_physics", "TorsoParams", "HEART_BASE",
               "build_torso_labels", "sample_torso_params", "scene_classes"}
MODEL_PACKAGES = ("models", "pipeline")


def _world_references(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(WORLD_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(WORLD_MODULES):
                found.append(node.module)
            found += [a.name for a in node.names if a.name in WORLD_NAMES
                      or (node.module == "fedsim_app.ctsim" and a.name == "render")]
        elif isinstance(node, ast.Attribute) and node.attr in WORLD_NAMES:
            found.append(node.attr)
    return found


def test_model_code_names_no_world_code():
    """Imports and attribute uses (not prose) of every model module."""
    root = Path(fedsim_app.__file__).parent
    hits = {str(path.relative_to(root)): refs
            for pkg in MODEL_PACKAGES for path in sorted((root / pkg).rglob("*.py"))
            if (refs := _world_references(ast.parse(path.read_text())))}
    assert not hits, f"the model reaches into the world: {hits}"


def test_the_check_sees_world_code():
    tree = ast.parse("from fedsim_app.anatomy import x\nimport fedsim_app.cohort\n"
                     "from fedsim_app.ctsim import render_fast, render\n"
                     "y = ctsim.render_physics\nz = coarse.render(mu)\n")
    assert _world_references(tree) == ["fedsim_app.anatomy", "fedsim_app.cohort",
                                       "render_fast", "render", "render_physics"]


def test_rendering_the_model_loads_no_world_module():
    code = (
        "import sys, torch\n"
        "from fedsim_app.pipeline import FedSimModel, PipelinePreset, SampleState\n"
        "from fedsim_app.models.generator import ChainConfig, Generator\n"
        "FedSimModel(PipelinePreset('t', 16, 16)).render(SampleState(site='B'))\n"
        "Generator('C', config=ChainConfig(label_size=16), device='cpu')"
        "(params=torch.zeros(1, 21), soft=True)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('fedsim_app.anatomy', "
        "'fedsim_app.cohort'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
