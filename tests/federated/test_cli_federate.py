"""``fedsim federate`` in-process: a run, its resume, bad input as one line and exit 2."""

import json

import pytest

from fedsim_app.cli import main


@pytest.mark.slow
def test_federate_runs_resumes_and_refuses_reuse(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["federate", "--sites", "A", "--data", f"A={tiny_data}", "--labels", "A=2",
            "--preset", "smoke", "--no-matrix", "--out", str(out)]
    assert main([*base, "--rounds", "2"]) == 0
    lines = (out / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(x)["round"] for x in lines] == [0, 1]
    assert json.loads(lines[0])["metrics"]["A"]["iou"] > 0
    assert (out / "sites" / "A" / "local.pt").is_file()
    # the folder holds a run: starting over it is refused, --resume continues (done)
    assert main([*base, "--rounds", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["federate", "--out", str(out), "--resume"]) == 0
    assert len((out / "rounds.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("argv, words", [
    (["--sites", "A,A"], "name each site once"),
    (["--sites", "Q"], "Q"),
    (["--labels", "A"], "KEY=VALUE"),
    (["--data", "B=/nowhere"], "not in --sites"),
    (["--resume"], "no federated run"),
])
def test_federate_bad_input_one_line(tmp_path, capsys, argv, words):
    args = ["federate", "--sites", "A", "--data", f"A={tmp_path}", "--out",
            str(tmp_path / "run"), *argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
