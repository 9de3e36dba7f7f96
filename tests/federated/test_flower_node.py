"""flower_node: Flower's SuperNode loop with its waits capped, nothing else changed."""

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("flwr") is None,
                                reason="Flower is not installed (the [flower] extra)")


def test_supernode_waits_capped_on_flower_142(monkeypatch):
    import flwr
    from flwr.supernode import start_client_internal as loop

    from fedsim_app.federated import flower_node

    monkeypatch.setattr(loop, "time", loop.time)  # restored after the test
    slept = []
    monkeypatch.setattr(flower_node.time, "sleep", slept.append)
    assert flower_node.cap_supernode_waits(0.1) is flwr.__version__.startswith("1.42.")
    loop.time.sleep(3)    # the idle wait between asks for a message
    loop.time.sleep(0.5)  # the wait for the ClientApp's reply
    loop.time.sleep(0.05)
    assert slept == [0.1, 0.1, 0.05]


def test_other_flower_release_left_alone(monkeypatch, caplog):
    import flwr
    from flwr.supernode import start_client_internal as loop

    from fedsim_app.federated import flower_node

    monkeypatch.setattr(flwr, "__version__", "1.99.0")
    before = loop.time
    assert flower_node.cap_supernode_waits(0.1) is False
    assert loop.time is before and "keeps its own waits" in caplog.text


def test_poll_must_be_positive(capsys):
    from fedsim_app.federated.flower_node import main

    with pytest.raises(SystemExit) as exc:
        main(["--poll-s", "0", "--", "--insecure"])
    assert exc.value.code == 2 and "--poll-s must be > 0" in capsys.readouterr().err
