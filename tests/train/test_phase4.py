"""Phase 4: the enhancer and its discriminator trained again after phase 3, on the
generators as phase 3 leaves them (``phase4_epochs``; off in the paper preset)."""

import json

import pytest
import torch

from fedsim_app.train.glo import CHECKPOINT, DONE
from fedsim_app.train.session import make_trainer


def _trainer(tiny_site, cfg, out, **kw):
    return make_trainer(tiny_site, "A", 2, cfg, out, **kw)


def test_phase4_trains_enhancer_and_discriminator_on_the_final_generators(
        tiny_site, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(enhancer_levels="coarse", phase4_epochs=2)
    tr = _trainer(tiny_site, cfg, tmp_path)
    tr.run_phase1()
    tr.run_phase2()
    tr.run_phase3()
    assert tr.phase == 4 and not any(p.requires_grad for p in tr.nets.disc.parameters())

    def snapshot(name):
        return {k: v.clone() for k, v in tr.nets.modules()[name].state_dict().items()}

    before = {k: snapshot(k) for k in ("g_shape", "g_material", "enhancer", "disc")}
    shift = tr.nets.enhancer.level_shift.clone()
    calls = []
    original = tr.steps.calibrate_enhancer
    tr.steps.calibrate_enhancer = lambda *a: (calls.append(a), original(*a))
    tr.run_phase4()
    assert tr.phase == DONE and calls == [(tr.prior, cfg.level_refit_steps)]
    assert all(p.requires_grad for p in tr.nets.disc.parameters()) and tr.nets.disc.training

    def moved(name):
        return any(not torch.equal(v, snapshot(name)[k]) for k, v in before[name].items())

    assert moved("enhancer") and moved("disc")
    assert not moved("g_shape") and not moved("g_material")  # the generators stay
    # the levels fitted again are phase 3's: they depend on the generators, which stayed
    torch.testing.assert_close(shift, tr.nets.enhancer.level_shift)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["phase"] == 4 for r in rows) == tr.totals()[4] == 2 * tr.data.n_labelled
    assert {"d", "g_adv"} <= set(next(r for r in rows if r["phase"] == 4))


def test_phase4_off_ends_after_phase3(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg.replace(phase4_epochs=0), tmp_path)
    tr.run()
    assert tr.phase == DONE and tr.totals()[4] == 0
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} == {1, 2, 3}
    assert not any(p.requires_grad for p in tr.nets.disc.parameters())


def test_checkpoint_from_before_phase4_stays_finished(tiny_site, tiny_cfg, tmp_path):
    """A run finished before phase 4 existed (phase 4, no ``phase4_epochs`` in its
    config) is finished: it loads as a model and a resume trains nothing more."""
    from fedsim_app.train.checkpoint import load_checkpoint, save_checkpoint
    from fedsim_app.train.glo import is_finished
    from fedsim_app.train.model_io import load_site_models

    tr = _trainer(tiny_site, tiny_cfg.replace(phase4_epochs=0), tmp_path)
    tr.run()
    state = load_checkpoint(tmp_path / CHECKPOINT)
    del state["config"]["phase4_epochs"]
    state["phase"] = 4
    del state["seconds"]["4"]
    save_checkpoint(tmp_path / CHECKPOINT, state)
    assert is_finished(state)
    assert not is_finished({**state, "config": {**state["config"], "phase4_epochs": 1}})
    assert "A" in load_site_models(tmp_path / CHECKPOINT)
    resumed = _trainer(tiny_site, tiny_cfg, tmp_path, resume=True)
    assert resumed.phase == DONE
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    resumed.run()
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == rows


def test_phase4_runs_at_its_own_rate(tiny_site, tiny_cfg, tmp_path):
    from fedsim_app.train.glo import gan_rate_scale

    cfg = tiny_cfg.replace(phase4_epochs=2, lr_phase4=tiny_cfg.lr_gan / 10)
    assert gan_rate_scale(cfg, 4) == pytest.approx(0.1) and gan_rate_scale(cfg, 2) == 1.0
    assert gan_rate_scale(tiny_cfg, 4) == 1.0  # 0: phase 2's rate
    tr = _trainer(tiny_site, cfg, tmp_path)
    seen = {}
    original = tr.steps.run_gan_step

    def recording(idx, d_opt, g_opt):
        seen.setdefault(tr.phase, []).append((d_opt.param_groups[0]["lr"],
                                              g_opt.param_groups[0]["lr"]))
        return original(idx, d_opt, g_opt)

    tr.steps.run_gan_step = recording
    tr.run()
    assert seen[2][0] == (cfg.lr_gan, cfg.lr_gan)  # the constant part of each schedule
    assert seen[4][0] == pytest.approx((cfg.lr_phase4, cfg.lr_phase4))
    assert len(seen[4]) == tr.totals()[4]
