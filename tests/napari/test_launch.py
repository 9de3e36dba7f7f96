"""``python -m fedsim_napari`` without a display: FedSim's words and a way to run headless,
not Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedsim_napari.launch import build_parser, display_problem

ROOT = Path(__file__).resolve().parents[2]


def _run(env_changes: dict, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(env_changes)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                         env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "fedsim_napari", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 displays are Linux's")
@pytest.mark.parametrize("env", [{}, {"DISPLAY": ":4321"}], ids=["unset", "no-server"])
def test_no_display_is_explained(env):
    done = _run(env)
    assert done.returncode == 2, done.stderr
    assert "needs a display" in done.stderr and "xvfb-run" in done.stderr
    assert "--screenshot" in done.stderr
    assert "Aborted" not in done.stderr and "Traceback" not in done.stderr


def test_display_problem_cases():
    if not sys.platform.startswith("linux"):
        pytest.skip("X11 displays are Linux's")
    assert "not set" in display_problem({})
    assert "no X server" in display_problem({"DISPLAY": ":4321"})
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert display_problem({"DISPLAY": "remote.host:0"}) is None  # cannot tell: let Qt try


def test_options_are_documented():
    text = build_parser().format_help()
    for option in ("--screenshot", "--preset", "--random", "xvfb-run"):
        assert option in text
