"""Training and the quality figures on another device than the CPU (marker ``cuda``; CI has
none, a GPU machine runs them with ``pytest -m cuda tests/train``), and ``--device``'s
errors everywhere."""

import pytest
import torch

from fedsim_app.cli import main
from fedsim_app.device import resolve_device, seeded
from fedsim_app.errors import FedSimError
from fedsim_app.train.data import load_site_data
from fedsim_app.train.glo import DONE, Interrupted
from fedsim_app.train.model_io import load_site_models
from fedsim_app.train.quality import Effort, evaluate_site
from fedsim_app.train.session import make_trainer

_NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_seeded_draws_repeat_and_leave_the_callers_state():
    torch.manual_seed(7)
    before = torch.get_rng_state()
    with seeded(3, "cpu"):
        a = torch.randn(4)
    with seeded(3):
        b = torch.randn(4)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)
    after = torch.randn(4)
    torch.manual_seed(7)
    assert torch.equal(after, torch.randn(4))  # the draws go on as if none were made


def test_device_names_are_checked(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(FedSimError, match="not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(FedSimError, match="cpu or cuda"):
        resolve_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(FedSimError, match="sees 1 CUDA GPU.*cuda:0"):
        resolve_device("cuda:3")


def test_cli_refuses_a_missing_device_before_reading_data(tmp_path, capsys):
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    rc = main(["train", "--site", "A", "--cohort", str(tmp_path), "--preset", "smoke",
               "--device", "cuda:7", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "cuda:7" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.cuda
@_NO_CUDA
def test_training_on_cuda_runs_every_phase_and_resumes_on_the_cpu(tiny_site, tiny_cfg,
                                                                   tmp_path):
    cfg = tiny_cfg.replace(phase1_epochs=2)
    gpu = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "gpu", device="cuda")
    cpu = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "cpu", device="cpu")
    assert gpu.data.images.is_cuda and gpu.nets.enhancer.head.weight.is_cuda
    # the first step's losses agree across devices (same init, same data, same draws)
    gpu.stop_after = cpu.stop_after = 1
    for tr in (gpu, cpu):
        with pytest.raises(Interrupted):
            tr.run()
    rows = [tr.log.rows[-1] for tr in (gpu, cpu)]
    for key in ("iou", "mse"):
        assert rows[0][key] == pytest.approx(rows[1][key], rel=1e-3), key
    # the GPU run's checkpoint resumes on the CPU for 3 steps, then on CUDA to the end
    on_cpu = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "gpu", resume=True, device="cpu")
    on_cpu.stop_after = 3
    with pytest.raises(Interrupted):
        on_cpu.run()
    assert (on_cpu.phase, on_cpu.step) > (1, 1)
    resumed = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "gpu", resume=True,
                           device="cuda")
    assert (resumed.phase, resumed.step) == (on_cpu.phase, on_cpu.step)
    resumed.run()
    assert resumed.phase == DONE and resumed.nets.z_unl.codes.is_cuda
    model = load_site_models(tmp_path / "gpu" / "checkpoint.pt")["A"].to("cuda")
    chain = model.chain()
    assert chain.device.type == "cuda"
    train = load_site_data(tiny_site, chain.grid, n_labelled=model.n_labelled)
    test = load_site_data(tiny_site, chain.grid, n_labelled=0, subset="test")
    q = evaluate_site(model, train, test, effort=Effort(fit_steps=5))
    assert 0 <= q.shape_iou <= 1 and q.noise_ratio > 0 and 0 <= q.c2st <= 1
