"""The same two rounds in-process and on local Flower (SuperLink + two SuperNodes) give
the same shared weights; Flower's processes are gone afterwards."""

import importlib.util
from pathlib import Path

import pytest
import torch

from fedsim_app.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("flwr") is None,
                       reason="Flower is not installed (the [flower] extra)"),
]


@pytest.fixture(scope="module")
def two_site_cohort(tmp_path_factory):
    from fedsim_app.cohort.generate import generate_cohort

    root = tmp_path_factory.mktemp("flcohort")
    generate_cohort(root, sites="A,B", cases=5, size=32, seed=0)
    return root


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmd.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


def test_two_rounds_inprocess_and_on_flower_agree(two_site_cohort, tmp_path):
    base = ["federate", "--sites", "A,B", "--cohort", str(two_site_cohort), "--labels",
            "A=2", "--labels", "B=2", "--rounds", "2", "--preset", "smoke", "--no-matrix"]
    assert main([*base, "--out", str(tmp_path / "inproc")]) == 0
    assert main([*base, "--runtime", "flower", "--out", str(tmp_path / "flower")]) == 0
    a = torch.load(tmp_path / "inproc" / "server.pt", weights_only=True)
    b = torch.load(tmp_path / "flower" / "server.pt", weights_only=True)
    assert a["round"] == b["round"] == 2
    for module in ("g_shape", "g_material"):
        for k, v in a["models"][module].items():
            assert torch.allclose(v, b["models"][module][k], rtol=1e-5, atol=1e-6), k
    # each SuperNode kept its site's state in its own folder
    assert sorted(p.name for p in (tmp_path / "flower" / "flower" / "sites").iterdir()) == [
        "A", "B"]
    assert _processes_mentioning(str(tmp_path / "flower")) == []
