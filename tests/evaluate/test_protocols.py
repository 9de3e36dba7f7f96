"""Table 3 end to end on the smoke preset: a small site-A cohort at 32³."""

import json
from dataclasses import replace

import pytest

from fedsim_app.cli import main
from fedsim_app.errors import FedSimError
from fedsim_app.evaluate.protocols import DIRECT_FL_MISSING, preset, run_table3


@pytest.fixture(scope="module")
def site_a(tmp_path_factory):
    import warnings

    from fedsim_app.cohort.generate import generate_cohort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mmwhs codes are not consecutive
        return generate_cohort(tmp_path_factory.mktemp("cohort"), sites="A", cases=8, size=32,
                               seed=0).datasets["A"]


def test_missing_ingredients_are_reported_and_finished_folds_resume(site_a, tmp_path):
    cfg = preset("smoke")
    lines = []
    rows = ("lower", "direct-fl", "sim-fl")
    res = run_table3({"A": site_a}, tmp_path, cfg, rows=rows, log=lines.append)["A"]
    # one site cannot federate (or federated's Direct-FL is not on this branch)
    assert res["direct-fl"]["not_run"] in (DIRECT_FL_MISSING, "Direct-FL needs two or more "
                                           "sites (pass --data for each)")
    assert "two or more sites" in res["sim-fl"]["not_run"]
    assert not (tmp_path / "A" / "direct-fl").exists()  # nothing faked on disk either
    assert not (tmp_path / "A" / "sim-fl").exists()
    fold = json.loads((tmp_path / "A" / "lower" / "fold0.json").read_text())
    assert len(fold["train_ids"]) == 4  # site A's budget
    assert not set(fold["train_ids"]) & set(fold["val_ids"] + fold["test_ids"])
    assert res["lower"]["folds"] == [fold["test_dice"]]
    assert all(0.0 <= d <= 1.0 for d in fold["test_dice"])
    # a rerun reads the finished fold instead of training again
    fold["test_dice"] = [0.123] * len(fold["test_dice"])
    (tmp_path / "A" / "lower" / "fold0.json").write_text(json.dumps(fold))
    again = run_table3({"A": site_a}, tmp_path, cfg, rows=("lower",), log=lines.append)
    assert again["A"]["lower"]["folds"] == [fold["test_dice"]]
    assert any("not run" in line for line in lines)
    # other settings in the same folder are refused, not mixed in
    with pytest.raises(FedSimError, match="finished with other settings"):
        run_table3({"A": site_a}, tmp_path, replace(cfg, unet=replace(cfg.unet, lr=0.1)),
                   rows=("lower",), log=lines.append)
    with pytest.raises(FedSimError, match="recorded with seed 0"):
        run_table3({"A": site_a}, tmp_path, preset("smoke", seed=1), rows=("lower",),
                   log=lines.append)


def test_missing_checkpoint_path_is_not_run(site_a, tmp_path):
    res = run_table3({"A": site_a}, tmp_path, preset("smoke"), rows=("ours-pre",),
                     checkpoints={("ours-pre", "A"): tmp_path / "nope.pt"}, log=print)
    assert "does not exist" in res["A"]["ours-pre"]["not_run"]


@pytest.mark.slow
def test_cli_smoke_writes_the_report(site_a, tmp_path, capsys):
    rc = main(["evaluate", "--preset", "smoke", "--data", f"A={site_a}", "--out",
               str(tmp_path / "ev")])
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    rows = report["summary"]["A"]["rows"]
    assert set(rows) == {"lower", "upper", "fix-mat", "ours-pre", "ours-full", "direct-fl",
                         "sim-fl"}
    for row in ("lower", "upper", "fix-mat", "ours-pre"):
        assert 0.0 <= rows[row]["mean"] <= 1.0 and rows[row]["n_folds"] == 1
    assert "fix-mat - lower" in report["summary"]["A"]["differences"]
    md = (tmp_path / "ev" / "report.md").read_text()
    assert "| Fix-Mat |" in md and "| Direct-FL | not run:" in md and "| Ours-Full |" in md
    assert (tmp_path / "ev" / "A" / "fix-mat" / "synthetic").is_dir()
    assert (tmp_path / "ev" / "A" / "examples.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "ev" / "dice.png").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "A"], "write SITE=DIR"),
    (["--data", "Z=."], "unknown site 'Z'"),
    (["--data", "A=/no/such/folder"], "is not a folder"),
    (["--protocol", "table9"], "use table3"),
    (["--folds", "0"], "--folds 0"),
    (["--checkpoint", "ours:A=x"], "ROW:SITE=RUN"),
    (["--checkpoint", "ours-full:A=/no/such/run"], "does not exist"),
    (["--device", "abacus"], "not a torch device"),
    (["--quick", "--size", "24"], "--size 24"),
])
def test_cli_bad_input_is_one_line_and_rc_2(argv, message, tmp_path, capsys):
    assert main(["evaluate", "--out", str(tmp_path / "ev"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert not (tmp_path / "ev").exists()  # refused before anything is written


def _smoke_checkpoint(path, *, with_prior):
    """An untrained smoke-preset checkpoint of site A, as tests/export writes one."""
    from fedsim_app.train.checkpoint import save_checkpoint
    from fedsim_app.train.config import preset as train_preset
    from fedsim_app.train.glo import DONE, build_nets
    from fedsim_app.train.latents import fit_normal

    cfg = train_preset("smoke", seed=0)
    nets = build_nets(cfg, n_labelled=3)
    prior = None
    if with_prior:
        mean, cov = fit_normal(nets.z_lab.codes)
        prior = {"mean": mean, "cov": cov}
    state = {"config": cfg.to_dict(), "site": "A", "case_ids": ["a", "b", "c"],
             "n_labelled": 3,
             "grid": {"shape": [16] * 3, "spacing_mm": [13.0] * 3, "origin_mm": [0.0] * 3},
             "phase": DONE if with_prior else 3, "step": 0,
             "models": {k: m.state_dict() for k, m in nets.modules().items()},
             "optimizers": {}, "prior": prior, "rng": {}, "seconds": {"1": 1.0}}
    return save_checkpoint(path, state)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:label codes 'mmwhs' are not consecutive")
def test_checkpoint_rows_pretrain_on_the_checkpoints_export(site_a, tmp_path):
    full = _smoke_checkpoint(tmp_path / "full.pt", with_prior=True)
    pre = _smoke_checkpoint(tmp_path / "pre.pt", with_prior=False)
    res = run_table3({"A": site_a}, tmp_path / "ev", preset("smoke"),
                     rows=("ours-pre", "ours-full"), log=print,
                     checkpoints={("ours-pre", "A"): full, ("ours-full", "A"): pre})["A"]
    assert len(res["ours-pre"]["folds"]) == 1  # any finished run serves as Ours-Pre
    fold = json.loads((tmp_path / "ev" / "A" / "ours-pre" / "fold0.json").read_text())
    assert fold["source"] == f"checkpoint passed: {full}" and "pretrain" in fold["log"]
    assert (tmp_path / "ev" / "A" / "ours-pre" / "synthetic").is_dir()
    # a run without the semi-supervised phase is no Ours-Full
    assert "semi-supervised" in res["ours-full"]["not_run"]
