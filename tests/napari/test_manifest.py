"""The npe2 manifest is valid and napari discovers the plugin (no display needed)."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_symlink_points_to_root_manifest():
    link = ROOT / "plugins" / "fedsim_napari" / "napari.yaml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "napari.yaml").resolve()


def test_npe2_validate_passes():
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "fedsim", "--imports"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_plugin_manager_discovers_fedsim():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("fedsim")
    widget_names = [w.display_name for w in manifest.contributions.widgets]
    assert "FedSim" in widget_names
    # every command resolves to an importable callable
    for cmd in manifest.contributions.commands:
        assert cmd.python_name, cmd.id
        mod, _, attr = cmd.python_name.partition(":")
        module = __import__(mod, fromlist=[attr])
        assert callable(getattr(module, attr)), cmd.python_name


def test_manifest_commands_are_unique():
    data = yaml.safe_load((ROOT / "napari.yaml").read_text())
    ids = [c["id"] for c in data["contributions"]["commands"]]
    assert len(ids) == len(set(ids))
