"""The install that `make` and CI do: napari pinned to the tested range, both Qt extras
exercised, lint in CI (issue 16)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}


def test_napari_is_pinned_to_the_tested_minor_release():
    napari = _requirements()["napari"]
    assert Version("0.9.2") in napari.specifier
    # no open upper end: the next minor release must be tried before it is allowed
    assert Version("0.10.0") not in napari.specifier
    assert Version("1.0") not in napari.specifier


def test_ci_runs_lint_tests_and_the_pyqt6_gui_pass():
    ci = (ROOT / ".ci" / "run").read_text()
    steps = [line.strip() for line in ci.splitlines() if line.strip().startswith("make ")]
    assert steps == ["make lint", "make test", "make test-gui-pyqt6"]
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH  := torch==2.13.0" in makefile
    assert ".[pyqt6,test]" in makefile and "-m gui" in makefile
    assert "QT_API=pyqt6" in makefile


def test_readme_quickstart_is_two_commands_and_links_stay_inside_the_repo():
    import re

    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("##", 1)[0]
    block = quick.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), target
    assert "../shared" not in readme
