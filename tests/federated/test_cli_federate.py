"""``fedsim federate`` in-process: a run, its resume, bad input as one line and exit 2."""

import json

import pytest

from fedsim_app.cli import main


@pytest.mark.slow
def test_federate_runs_resumes_and_refuses_reuse(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["federate", "--sites", "A", "--data", f"A={tiny_data}", "--labels", "A=2",
            "--preset", "smoke", "--no-matrix", "--out", str(out)]
    assert main([*base, "--rounds", "3"]) == 0  # one round a phase
    lines = (out / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(x)["round"] for x in lines] == [0, 1, 2]
    assert json.loads(lines[0])["metrics"]["A"]["iou"] > 0
    assert (out / "sites" / "A" / "local.pt").is_file()
    # its model scored on the test split at the end (quick at the smoke preset)
    printed = capsys.readouterr().out
    written = json.loads((out / "quality.json").read_text())
    assert written["effort"] == "quick" and set(written["sites"]) == {"A"}
    assert f"shape_iou={written['sites']['A']['shape_iou']:.3f}" in printed
    assert "quality: site A" in printed
    # the folder holds a run: starting over it is refused, --resume continues (done)
    assert main([*base, "--rounds", "3"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["federate", "--out", str(out), "--resume"]) == 0
    assert len((out / "rounds.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("argv, words", [
    (["--sites", "A,A"], "name each site once"),
    (["--sites", "Q"], "Q"),
    (["--labels", "A"], "KEY=VALUE"),
    (["--data", "B=/nowhere"], "not in --sites"),
    (["--resume"], "no federated run"),
    (["--secagg"], "--runtime flower"),
    (["--secagg", "--runtime", "flower", "--secagg-clip", "0"], "--secagg-clip must be > 0"),
])
def test_federate_bad_input_one_line(tmp_path, capsys, argv, words):
    args = ["federate", "--sites", "A", "--data", f"A={tmp_path}", "--out",
            str(tmp_path / "run"), *argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_checkpoints_exits_130_and_resumes(tiny_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "fedsim_app", "federate", "--sites", "A", "--data",
            f"A={tiny_data}", "--labels", "A=2", "--preset", "smoke", "--no-matrix",
            "--rounds", "4", "--out", str(out)]
    proc = subprocess.Popen(argv, env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
    log = out / "rounds.jsonl"
    deadline = time.monotonic() + 300
    while not (log.is_file() and log.read_text().strip()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    done = len(log.read_text().splitlines())
    assert proc.returncode == 130 and "--resume" in err, err
    assert 1 <= done < 4 and torch_round(out) == done
    assert main(["federate", "--out", str(out), "--resume"]) == 0
    assert len(log.read_text().splitlines()) == 4 and torch_round(out) == 4


def torch_round(out) -> int:
    import torch

    return int(torch.load(out / "server.pt", weights_only=True)["round"])
