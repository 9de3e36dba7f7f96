"""Every Table 3 row on two sites (smoke preset), OOD, realism and the Table 2 ablation."""

import json
import sys
import types

import numpy as np
import pytest
import torch

from fedsim_app.evaluate.ood import realism, render_ood
from fedsim_app.evaluate.protocols import ROWS, preset, run_table3
from fedsim_app.evaluate.table2 import alpha_blend, poisson_available, poisson_blend

pytestmark = pytest.mark.filterwarnings("ignore:label codes 'mmwhs' are not consecutive")


@pytest.fixture(scope="module")
def sites_ab(tmp_path_factory):
    import warnings

    from fedsim_app.cohort.generate import generate_cohort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # 12 cases: each site keeps cases beyond its budget for the semi-supervised phase
        return generate_cohort(tmp_path_factory.mktemp("cohort"), sites="A,B", cases=12,
                               size=32, seed=0).datasets


@pytest.fixture
def fedavg_stand_in(monkeypatch):
    """A stand-in for federated's ``train_direct_fl`` (same signature): it trains the U-Net
    on the sites' volumes pooled, and records what it was given."""
    from fedsim_app.evaluate.unet import make_unet, train

    calls = []

    def train_direct_fl(data, cfg, *, rounds, local_steps, seed=0, val=None, log=None):
        calls.append({"data": {s: tuple(np.shape(a) for a in p) for s, p in data.items()},
                      "val": sorted(val or {}), "rounds": rounds, "local_steps": local_steps})
        x = np.concatenate([p[0] for p in data.values()])
        y = np.concatenate([p[1] for p in data.values()])
        net, _ = train(make_unet(cfg), x, y, rounds * local_steps, cfg, seed=seed)
        if isinstance(log, dict):
            log["stand_in"] = True
        return net.eval()

    module = types.ModuleType("fedsim_app.federated.direct_fl")
    module.train_direct_fl = train_direct_fl
    monkeypatch.setitem(sys.modules, "fedsim_app.federated.direct_fl", module)
    return calls


@pytest.mark.slow
def test_every_row_runs_on_two_sites_and_resumes(sites_ab, tmp_path, fedavg_stand_in):
    from fedsim_app.export.sample import load_export_model
    from fedsim_app.train.checkpoint import load_checkpoint
    from fedsim_app.train.glo import DONE

    out = tmp_path / "ev"
    cfg = preset("smoke")
    info = {}
    res = run_table3(sites_ab, out, cfg, log=print, info=info)
    for site in "AB":
        for row in ROWS:
            assert "folds" in res[site][row], (site, row, res[site][row])
            assert all(0.0 <= d <= 1.0 for d in res[site][row]["folds"][0])
        # every row's U-Net is also scored on the site's patients as seen at the other site
        other = "B" if site == "A" else "A"
        for row in ROWS:
            ood = res[site][row]["ood"][other][0]
            assert len(ood) == len(res[site][row]["folds"][0]) and \
                all(0.0 <= d <= 1.0 for d in ood)
        for row in ("fix-mat", "ours-pre", "ours-full", "sim-fl"):
            assert 0.0 <= res[site][row]["realism"]["c2st"] <= 1.0
    # one training run gives both rows: pre.pt after the labelled phases, then phase 3
    run = out / "generators" / "A" / "fold0" / "run"
    assert load_checkpoint(run / "pre.pt")["phase"] == 3
    assert load_checkpoint(run / "checkpoint.pt")["phase"] == DONE
    assert load_checkpoint(run / "checkpoint.pt")["prior"] is not None
    pre = json.loads((out / "A" / "ours-pre" / "fold0.json").read_text())
    full = json.loads((out / "A" / "ours-full" / "fold0.json").read_text())
    assert pre["source"].endswith("pre.pt") and full["source"].endswith("checkpoint.pt")
    # the generator saw the fold's training cases only: never its validation or the test
    split = json.loads((out / "A" / "split.json").read_text())
    view = json.loads((out / "generators" / "A" / "fold0" / "data" /
                       "fedsim_split.json").read_text())
    fold = split["folds"][0]
    assert view["train"] == fold["labelled"] + fold["extra"] and fold["extra"]
    assert not set(view["train"]) & set(fold["val"] + split["test"])
    # Sim-FL: one federated run over both sites, a checkpoint per site that export reads
    for site in "AB":
        model = load_export_model(out / "generators" / "federated" / "fold0" /
                                  f"site_{site}.pt", site, size=16)
        assert model.trained and model.source["training"]["phase3_prior"]
    # Direct-FL: called once per fold with every site's labelled volumes and validation
    assert len(fedavg_stand_in) == 1
    call = fedavg_stand_in[0]
    assert call["data"] == {"A": ((4, 32, 32, 32),) * 2, "B": ((6, 32, 32, 32),) * 2}
    assert call["val"] == ["A", "B"]
    assert call["rounds"] * call["local_steps"] == cfg.unet.pretrain_steps
    assert {"generator A fold0", "federated generator fold0"} <= set(info["seconds"])
    # a rerun reads every finished fold: nothing is trained again
    fedavg_stand_in.clear()
    again = run_table3(sites_ab, out, cfg, log=print)
    assert not fedavg_stand_in
    for site in "AB":
        for row in ROWS:
            assert again[site][row]["folds"] == res[site][row]["folds"]
            assert again[site][row]["ood"] == res[site][row]["ood"]


def _smoke_checkpoint(path):
    from fedsim_app.train.checkpoint import save_checkpoint
    from fedsim_app.train.config import preset as train_preset
    from fedsim_app.train.glo import build_nets

    cfg = train_preset("smoke", seed=0)
    nets = build_nets(cfg, n_labelled=2)
    return save_checkpoint(path, {
        "config": cfg.to_dict(), "site": "B", "case_ids": ["a", "b"], "n_labelled": 2,
        "grid": {"shape": [16] * 3, "spacing_mm": [13.0] * 3, "origin_mm": [0.0] * 3},
        "phase": 3, "step": 0, "models": {k: m.state_dict() for k, m in nets.modules().items()},
        "optimizers": {}, "prior": None, "rng": {}, "seconds": {}})


def test_ood_renders_the_patients_labels_through_the_other_sites_enhancer(tmp_path):
    ck = _smoke_checkpoint(tmp_path / "b.pt")
    rng = np.random.default_rng(0)
    images = rng.normal(0, 50, (2, 16, 16, 16)).astype(np.float32)
    labels = np.zeros((2, 16, 16, 16), np.int8)
    labels[:, 4:12, 4:12, 4:12] = 1
    a = render_ood(images, labels, ck, "B", 16, seed=3)
    assert a.shape == images.shape and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, render_ood(images, labels, ck, "B", 16, seed=3))
    # the patient's own CT (reduced to the coarse grid) conditions the enhancer
    brighter = images.copy()
    brighter[1] += 300.0
    b = render_ood(brighter, labels, ck, "B", 16, seed=3)
    np.testing.assert_array_equal(a[0], b[0])  # one patient at a time
    assert not np.allclose(a[1], b[1])


def test_ood_needs_a_trained_enhancer():
    from fedsim_app.errors import FedSimError

    with pytest.raises(FedSimError, match="no trained enhancer"):
        render_ood(np.zeros((1, 16, 16, 16)), np.zeros((1, 16, 16, 16)), "atlas", "B", 16)


def test_realism_is_chance_for_identical_data_and_high_for_different():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 200, (4, 8, 16, 16)).astype(np.float32)
    labels = np.zeros(real.shape, np.int64)
    labels[:, 2:6, 4:12, 4:12] = 3  # the heart crosses slices 2-5 of each volume
    pair = (real, labels)
    same = realism((real[:2], labels[:2]), (real[2:], labels[2:]), pair, n_iter=30)
    assert same["c2st"] == 0.5  # the classifiers see the same slices under both labels
    assert same["c2st_lo"] == same["c2st_hi"] == 0.5
    flat = (np.zeros_like(real), labels)
    res = realism((real[:2], labels[:2]), (real[2:], labels[2:]), flat, n_iter=100)
    assert res["c2st_lo"] > 0.9 and res["c2st_lo"] <= res["c2st"] <= res["c2st_hi"]


def test_alpha_blend_weights():
    bg, fg = np.zeros((3, 8, 8), np.float32), np.full((3, 8, 8), 100.0, np.float32)
    np.testing.assert_allclose(alpha_blend(bg, fg, np.ones((3, 8, 8), bool)), fg, atol=1e-4)
    np.testing.assert_allclose(alpha_blend(bg, fg, np.zeros((3, 8, 8), bool)), bg)


@pytest.mark.skipif(not poisson_available(), reason="needs opencv-python-headless")
def test_poisson_blend_keeps_the_outside_and_the_gradients():
    rng = np.random.default_rng(0)
    yy = np.arange(32, dtype=np.float32)[:, None] * 20.0
    bg = np.broadcast_to(yy, (2, 32, 32)).astype(np.float32) - 300
    mask = np.zeros((2, 32, 32), bool)
    mask[0, 10:20, 8:22] = True
    mask[1, 0:2, 0:2] = True  # a tiny region at the border (OpenCV's hard case)
    # an object whose gradients are the background's: pasting it changes nothing
    out = poisson_blend(bg, bg + 150.0, mask)
    np.testing.assert_allclose(out, bg, atol=2 * 10.0)  # two 8-bit steps of 10 HU
    far = np.ones((2, 32, 32), bool)
    far[0, 8:22, 6:24] = False
    far[1, :4, :4] = False
    noisy = rng.normal(0, 100, bg.shape).astype(np.float32)
    np.testing.assert_array_equal(poisson_blend(noisy, noisy + 500, mask)[far], noisy[far])


@pytest.mark.slow
def test_table2_rows_train_on_synthetic_data_only(sites_ab, tmp_path):
    from fedsim_app.evaluate.table2 import ROWS as ROWS2
    from fedsim_app.evaluate.table2 import run_table2

    res = run_table2(sites_ab["A"], tmp_path, preset("smoke"), log=print)["A"]
    for row in ROWS2:
        if row == "poisson" and not poisson_available():
            assert "OpenCV" in res[row]["not_run"]
            continue
        assert all(0.0 <= d <= 1.0 for d in res[row]["folds"][0])
        fold = json.loads((tmp_path / "table2" / row / "fold0.json").read_text())
        assert "finetune" not in fold["log"] and fold["checkpoint"].endswith("checkpoint.pt")
    assert torch.get_num_threads() >= 1
