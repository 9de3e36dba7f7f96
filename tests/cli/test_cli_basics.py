import json

import pytest

from fedsim_app import __version__
from fedsim_app.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "info" in out


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["fedsim"] == __version__
    assert info["versions"]["torch"].startswith("2.")
    assert info["torch_device"] in ("cpu", "cuda") or info["torch_device"].startswith("cuda")
    assert isinstance(info["assets"], list)


def test_unknown_command_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
