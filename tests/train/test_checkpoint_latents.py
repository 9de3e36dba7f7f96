"""Checkpoints (atomic, versioned, weights-only, errors naming the file) and latents."""

import pytest
import torch

from fedsim_app.train import checkpoint as ck
from fedsim_app.train.latents import Latents, fit_normal, sample_normal


def test_round_trip_with_rng(tmp_path):
    g = torch.Generator().manual_seed(5)
    state = {"models": {"w": torch.arange(3.0)}, "phase": 2, "step": 7,
             "rng": ck.rng_state(g)}
    expected = torch.rand(2, generator=g)
    path = ck.save_checkpoint(tmp_path / "run" / "last.pt", state)
    assert not list(path.parent.glob(".*tmp*"))  # nothing left half-way
    data = ck.load_checkpoint(path)
    assert data["phase"] == 2 and data["step"] == 7
    assert torch.equal(data["models"]["w"], torch.arange(3.0))
    g2 = torch.Generator()
    ck.restore_rng(data["rng"], g2)
    assert torch.equal(torch.rand(2, generator=g2), expected)


@pytest.mark.parametrize("version", [1, ck.FORMAT_VERSION + 1])
def test_other_version_refused(tmp_path, version):
    # version 1: G_material of z alone (before it read the labels); its weights do not fit
    path = tmp_path / "old.pt"
    torch.save({"format": ck.FORMAT, "format_version": version}, path)
    with pytest.raises(ck.CheckpointError,
                       match=rf"old\.pt.*version {version}.*reads version {ck.FORMAT_VERSION}"):
        ck.load_checkpoint(path)


def test_corrupt_and_foreign_named(tmp_path):
    good = ck.save_checkpoint(tmp_path / "good.pt", {"x": torch.zeros(100)})
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ck.CheckpointError, match=r"bad\.pt: corrupt"):
        ck.load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ck.CheckpointError, match=r"foreign\.pt: not a FedSim"):
        ck.load_checkpoint(foreign)
    with pytest.raises(ck.CheckpointError, match="missing.pt"):
        ck.load_checkpoint(tmp_path / "missing.pt")


def test_code_in_checkpoint_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"format": ck.FORMAT, "format_version": ck.FORMAT_VERSION, "x": Evil()}, path)
    with pytest.raises(ck.CheckpointError, match=r"evil\.pt: holds objects"):
        ck.load_checkpoint(path)


def test_latents_seeded_normal():
    a, b = Latents(4, 32, seed=1), Latents(4, 32, seed=1)
    assert torch.equal(a.codes, b.codes) and a.codes.shape == (4, 32)
    assert a(torch.tensor([2])).shape == (1, 32)


def test_fit_and_sample_normal():
    g = torch.Generator().manual_seed(0)
    true_mean = torch.linspace(-1, 1, 3)
    codes = true_mean + 0.5 * torch.randn(4000, 3, generator=g)
    mean, cov = fit_normal(codes, shrink=0.0)
    assert torch.allclose(mean, true_mean, atol=0.05)
    assert torch.allclose(cov, 0.25 * torch.eye(3), atol=0.03)
    draws = sample_normal(mean, cov, 5000, seed=1)
    assert torch.allclose(draws.mean(0), true_mean, atol=0.05)
    assert torch.equal(draws, sample_normal(mean, cov, 5000, seed=1))
    # fewer codes than dimensions still gives a usable (positive definite) covariance
    _, cov4 = fit_normal(torch.randn(4, 32, generator=g))
    assert torch.linalg.eigvalsh(cov4.double()).min() > 0
