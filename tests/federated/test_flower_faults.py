"""A hospital's SuperNode killed mid-run on local Flower: the rounds go on with the
others (the minimum still answers), the site comes back later from its own saved state,
trains on the current shared weights, and the round log and the CLI say so."""

import dataclasses
import importlib.util
import json
import threading
import time

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("flwr") is None,
                       reason="Flower is not installed (the [flower] extra)"),
]


ROUNDS = 14  # enough for C to restart (load its data) and come back before the end


def _rounds(run):
    log = run / "rounds.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines() if x] if log.is_file() else []


def _wait(cond, what, timeout_s=600):
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_killed_site_is_left_out_then_rejoins(tiny_data, fed_cfg, tmp_path, capsys):
    from types import SimpleNamespace

    from fedsim_app.cli.federate import _Bar
    from fedsim_app.federated.flower_launch import LocalFlower, _free_ports
    from fedsim_app.federated.protocol import RoundTask
    from fedsim_app.federated.session import Federation
    from fedsim_app.train.checkpoint import load_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    keys = ("A", "B", "C")  # three scanners over one small dataset folder
    cfg = dataclasses.replace(fed_cfg, coarse_matrix=False)
    fed = Federation(keys, dict.fromkeys(keys, str(tiny_data)), dict.fromkeys(keys, 2), ROUNDS,
                     2, "flower", cfg, build_matrix=False)
    fed.save(run)
    status = {}
    with LocalFlower(fed, run) as flower:
        worker = threading.Thread(target=lambda: status.setdefault(
            "rc", flower.run(straggler_s=10.0)), daemon=True)
        worker.start()
        _wait(lambda: len(_rounds(run)) >= 1, "round 1")
        flower.stop_node("C")  # killed while round 2 runs or is being sent
        _wait(lambda: any("C" in r["missing"] for r in _rounds(run)), "a round without C")
        dropped = len(_rounds(run))
        _wait(lambda: len(_rounds(run)) >= dropped + 1, "another round without C")
        flower.start_node("C", flower.link, _free_ports(1)[0])
        worker.join(900)
    assert status.get("rc") == 0, (run / "flower" / "flwr-run.log").read_text()[-3000:]
    rounds = _rounds(run)
    assert [r["round"] for r in rounds] == list(range(ROUNDS))
    assert sorted(rounds[0]["accepted"]) == ["A", "B", "C"]
    missed = [r["round"] for r in rounds if "C" in r["missing"]]
    assert missed and all(sorted(rounds[i]["accepted"]) == ["A", "B"] for i in missed)
    back = [r for r in rounds if r["rejoined"]]
    assert len(back) == 1 and back[0]["rejoined"] == {"C": missed[0] - 1}
    assert back[0]["round"] > max(missed) and "C" in back[0]["accepted"]
    assert sorted(rounds[-1]["accepted"]) == ["A", "B", "C"]
    # C continued from its own saved state up to the last round
    assert load_checkpoint(run / "flower" / "sites" / "C" / "local.pt")["round_done"] == ROUNDS - 1

    # what the CLI prints for such rounds
    bar = _Bar(len(rounds), 0)
    for r in rounds:
        bar(SimpleNamespace(task=RoundTask.from_dict(r), metrics=r["metrics"],
                            rejected=r["rejected"], missing=r["missing"],
                            accepted=r["accepted"], rejoined=r["rejoined"],
                            dp_epsilon=r["dp_epsilon"]))
    bar.close()
    printed = "".join(capsys.readouterr())
    assert f"round {missed[0] + 1}: no answer from site(s) C; continued with A, B" in printed
    assert f"site C rejoined (last answered round {missed[0]})" in printed
