"""The GLO trainer on the smoke preset: schedules, frozen discriminator, gradient paths,
resume equality, run folder."""

import json
import math

import pytest
import torch

from fedsim_app.train.checkpoint import CheckpointError
from fedsim_app.train.glo import CHECKPOINT, DONE, Interrupted
from fedsim_app.train.session import make_trainer


def _trainer(tiny_site, cfg, out, **kw):
    return make_trainer(tiny_site, "A", 2, cfg, out, **kw)


def test_data_split_and_budget(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    d = tr.data
    assert d.n_labelled == 2 and d.n_unlabelled >= 1
    assert d.images.shape[1:] == (16, 16, 16) and d.images.dtype == torch.float32
    assert d.labels.dtype == torch.int64 and int(d.labels.max()) <= 7
    # phase 1 steps over both labelled volumes at once: one step per epoch
    assert tr.totals() == {1: 1, 2: 2, 3: 2 * d.n_unlabelled, 4: 2}


def test_phase3_rates_and_frozen_discriminator(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    tr.phase = 3
    tr.start_phase3()
    lab = [g["lr"] for g in tr.opt["labelled"].param_groups]
    unl = [g["lr"] for g in tr.opt["unlabelled"].param_groups]
    assert lab == [1e-4, 1e-4, 1e-5]  # z, G_shape+G_material, enhancer
    assert unl == [1e-3, 1e-3, 1e-4]
    assert not any(p.requires_grad for p in tr.nets.disc.parameters())
    before = [p.clone() for p in tr.nets.disc.parameters()]
    enh_before = [p.clone() for p in tr.nets.enhancer.parameters()]
    tr.run_phase3()
    assert all(torch.equal(a, b) for a, b in zip(before, tr.nets.disc.parameters(),
                                                  strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(enh_before, tr.nets.enhancer.parameters(),
                                                     strict=True))
    # the last of 2·n_unl steps ran at rate (total - step) / (total - flat) of the base
    total = tr.totals()[3]
    flat = round(0.5 * total)
    last = [g["lr"] for g in tr.opt["unlabelled"].param_groups]
    assert last == pytest.approx([r * (1 / (total - flat)) for r in (1e-3, 1e-3, 1e-4)])


def test_enhancer_loss_reaches_latents_and_material_generator(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    tr.start_phase3()
    with torch.no_grad():  # an enhancer past its identity start
        tr.nets.enhancer.tail[1].weight.normal_(std=0.1)
    st = tr.steps
    idx = torch.tensor([0])
    z = tr.nets.z_unl(idx)
    coarse = st.coarse_of(z, tr.data.labels[:1])  # any label volume will do
    losses = st.enhancer_losses(coarse, idx + tr.data.n_labelled, tr.data.labels[:1])
    (losses["l1"] + losses["g_adv"]).backward()
    assert tr.nets.z_unl.codes.grad[0].abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in tr.nets.g_material.parameters() if p.ndim > 1)


def test_texture_term_only_when_weighted_and_it_trains_the_enhancer(tiny_site, tiny_cfg,
                                                                    tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    idx = torch.tensor([0])
    coarse = tr.steps.coarse_of(tr.nets.z_lab(idx), tr.data.labels[:1])
    assert "tex" not in tr.steps.enhancer_losses(coarse.detach(), idx, tr.data.labels[:1])
    tr = _trainer(tiny_site, tiny_cfg.replace(w_tex=1.0, slices_per_step=0), tmp_path / "tex")
    with torch.no_grad():  # texture to measure: an enhancer past its identity start
        tr.nets.enhancer.tail[1].weight.normal_(std=0.1)
    st = tr.steps
    block = torch.zeros_like(tr.data.labels[:1])
    block[:, :, 3:13, 3:13] = 1  # a structure with an interior (the tiny hearts have none)
    coarse = st.coarse_of(tr.nets.z_lab(idx), block).detach()
    losses = st.enhancer_losses(coarse, idx, block)
    assert float(losses["tex"]) > 0
    losses["tex"].backward()
    assert tr.nets.enhancer.tail[1].weight.grad.abs().sum() > 0
    assert st.weighted({"tex": losses["tex"]}) == losses["tex"]  # weight 1
    # tex_interior = "3d": the box's faces drop out of the measure, so the term differs
    tr3 = _trainer(tiny_site, tr.cfg.replace(tex_interior="3d"), tmp_path / "tex3")
    tr3.nets.enhancer.load_state_dict(tr.nets.enhancer.state_dict())
    box = torch.zeros_like(block)
    box[:, 3:13, 3:13, 3:13] = 1  # a box in z too: its top and bottom slices are faces
    tr.rng.manual_seed(5)
    tr3.rng.manual_seed(5)
    two = st.enhancer_losses(coarse, idx, box)["tex"]
    three = tr3.steps.enhancer_losses(coarse, idx, box)["tex"]
    assert float(three) > 0 and float(three) != pytest.approx(float(two))
    # tex_interior = "volume": the 3-D residual over the slab, inside the 3-D interior
    trv = _trainer(tiny_site, tr.cfg.replace(tex_interior="volume"), tmp_path / "texv")
    trv.nets.enhancer.load_state_dict(tr.nets.enhancer.state_dict())
    trv.rng.manual_seed(5)
    vol = trv.steps.enhancer_losses(coarse, idx, box)["tex"]
    assert float(vol) > 0 and float(vol) != pytest.approx(float(three))
    vol.backward()
    assert trv.nets.enhancer.tail[1].weight.grad.abs().sum() > 0
    with pytest.raises(Exception, match="tex_interior must be one of 2d, 3d, volume"):
        tr.cfg.replace(tex_interior="2.5d")


def test_volume_texture_draws_one_slab_of_contiguous_slices(tiny_site, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(tex_interior="volume", slices_per_step=5)
    tr = _trainer(tiny_site, cfg, tmp_path)
    k = tr.data.images.shape[1]
    labels = torch.zeros(2, k, 4, 4, dtype=torch.long)
    labels[1, k - 3:, 1, 1] = 4  # the heart in the top three slices of the second volume
    starts = set()
    for _ in range(40):
        s = tr.steps.pick_slices(labels)
        assert s.tolist() == list(range(int(s[0]), int(s[0]) + 5))
        assert int(s[0]) >= 0 and int(s[-1]) < k
        starts.add(int(s[0]))
    # each slab is centred on a heart slice, clipped to the volume
    assert starts == {k - 5}, starts
    labels[1] = 0
    labels[0, 7:9, 2, 2] = 1  # the heart in slices 7 and 8: slabs 5..9 and 6..10
    starts = {int(tr.steps.pick_slices(labels)[0]) for _ in range(40)}
    assert starts == {5, 6}, starts
    starts = {int(tr.steps.pick_slices(torch.zeros_like(labels))[0]) for _ in range(40)}
    assert len(starts) > 3  # no heart: anywhere
    tr.rng.manual_seed(3)
    first = tr.steps.pick_slices()
    tr.rng.manual_seed(3)
    assert torch.equal(first, tr.steps.pick_slices())  # from the training generator


def test_unlabelled_step_reaches_shape_generator(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    tr.start_phase3()
    with torch.no_grad():
        tr.nets.enhancer.tail[1].weight.normal_(std=0.1)
    before = tr.nets.g_shape.head.weight.clone()
    tr.steps.update_latents(torch.tensor([0]), tr.opt["unlabelled"])
    assert not torch.equal(before, tr.nets.g_shape.head.weight)


def test_finite_difference_shape_gradient_runs(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg.replace(shape_grad="fd", fd_step=0.05), tmp_path)
    z = tr.nets.z_lab(torch.tensor([0]))
    params = tr.nets.g_shape(z)
    loss = tr.steps.shape_loss(params, tr.data.labels[:1])
    loss.backward()
    assert 0 < float(loss.detach()) < 1
    assert tr.nets.z_lab.codes.grad is not None


def test_phase1_batches_labelled_volumes_and_calibrates_batchnorm(tiny_site, tiny_cfg,
                                                                    tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    seen = []
    tr.nets.g_material.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    tr.run_phase1()
    assert seen and seen[0] == tr.data.n_labelled  # every labelled latent in one batch
    g = tr.nets.g_material
    assert not g.training  # phases 2 and 3 use the calibrated statistics
    z, labels = tr.nets.z_lab.codes.detach(), tr.data.labels
    with torch.no_grad():
        eval_out = g(z, labels)
        g.train()
        train_out = g(z, labels)  # batch statistics of the same latents
        g.eval()
    assert torch.allclose(eval_out, train_out, atol=1e-5)


def test_phase2_starts_by_fitting_the_enhancers_label_skip(tiny_site, tiny_cfg, tmp_path):
    from fedsim_app.models.enhancer import fit_label_skip
    from fedsim_app.models.generator import upsample_coarse

    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    tr.run_phase1()
    enh = tr.nets.enhancer
    assert enh.skip_scale.tolist() == [1.0] * 8  # the coarse CT as it is, until phase 2
    n = tr.data.n_labelled
    labels = tr.data.labels[:n]
    with torch.no_grad():
        coarse = tr.steps.coarse_of(tr.nets.z_lab.codes, labels)
    want = fit_label_skip(upsample_coarse(coarse, tuple(labels.shape[1:])) / 1000,
                          tr.data.images[:n], labels, 8)
    tr.cfg = tr.cfg.replace(phase2_epochs=0)
    seen = []
    tr.steps.fit_enhancer_skip = lambda f=tr.steps.fit_enhancer_skip: seen.append(f())
    tr.run_phase2()
    assert not seen  # no phase-2 step, no fit (as a federation with no phase-2 rounds)
    tr.phase, tr.cfg = 2, tiny_cfg
    tr.run_phase2()
    assert len(seen) == 1
    assert not torch.allclose(enh.skip_shift, torch.zeros(8))
    torch.testing.assert_close(enh.skip_scale, want[0])  # buffers: phase 2 does not move them
    torch.testing.assert_close(enh.skip_shift, want[1])


def test_coarse_levels_fitted_at_phase2_start_and_refitted_at_phase3_end(
        tiny_site, tiny_cfg, tmp_path):
    from fedsim_app.models.enhance import structure_levels_of
    from fedsim_app.models.enhancer import fit_level_shift
    from fedsim_app.train.quality import refit_latents

    cfg = tiny_cfg.replace(enhancer_levels="coarse")
    tr = _trainer(tiny_site, cfg, tmp_path)
    enh = tr.nets.enhancer
    assert enh.uses_levels and enh.level_shift.tolist() == [0.0] * 8
    tr.run_phase1()
    n = tr.data.n_labelled
    images, labels = tr.data.images[:n], tr.data.labels[:n]
    with torch.no_grad():
        coarse = tr.steps.coarse_of(tr.nets.z_lab.codes, labels)
    want = fit_level_shift(structure_levels_of(coarse, labels), images, labels, 8)
    tr.steps.fit_enhancer_skip()
    assert float(want[1:].abs().max()) > 0.01
    torch.testing.assert_close(enh.level_shift, want)
    tr.phase = 2
    tr.run_phase2()
    torch.testing.assert_close(enh.level_shift, want)  # a buffer: the steps leave it
    tr.run_phase3()
    # phase 3's end: the shift again, on latents refitted from the prior's mean
    tr.nets.g_material.eval()
    z = refit_latents(cfg, tr.prior, tr.nets, tr.chain, images, labels,
                      n_iter=cfg.level_refit_steps)
    with torch.no_grad():
        refit = fit_level_shift(structure_levels_of(tr.steps.coarse_of(z, labels), labels),
                                images, labels, 8)
    torch.testing.assert_close(enh.level_shift, refit, rtol=0, atol=1e-5)
    assert not torch.allclose(refit, want, atol=1e-4)
    # the checkpoint carries the setting and the shift, and a loaded model renders with it
    from fedsim_app.train.model_io import load_site_models

    model = load_site_models(tmp_path / CHECKPOINT)["A"]
    assert model.config.enhancer_levels == "coarse"
    torch.testing.assert_close(model.chain().enhancer.level_shift, enh.level_shift)
    with pytest.raises(Exception, match="enhancer_levels must be one of skip, coarse"):
        cfg.replace(enhancer_levels="voxel")


@pytest.mark.slow
def test_resume_mid_phase_equals_uninterrupted(tiny_site, tiny_cfg, tmp_path):
    tiny_cfg = tiny_cfg.replace(phase1_epochs=2)  # so that step 1 stops inside phase 1
    full = _trainer(tiny_site, tiny_cfg, tmp_path / "full")
    full.run()
    assert full.phase == DONE
    totals = full.totals()
    n_total = sum(totals.values())
    in_phase3 = totals[1] + totals[2] + 1
    assert totals[4] >= 2 and totals[3] >= 2
    for stop in (1, 3, in_phase3, n_total - 1):  # in phase 1, 2, 3 and 4
        out = tmp_path / f"cut{stop}"
        cut = _trainer(tiny_site, tiny_cfg, out)
        cut.stop_after = stop
        with pytest.raises(Interrupted):
            cut.run()
        resumed = _trainer(tiny_site, tiny_cfg, out, resume=True)
        resumed.run()
        for name, module in full.nets.modules().items():
            other = resumed.nets.modules()[name].state_dict()
            for key, value in module.state_dict().items():
                assert torch.equal(value, other[key]), (stop, name, key)
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == n_total  # the redone steps are not logged twice
    for name in ("config.toml", "metrics.csv", "metrics.jsonl", "loss_curves.png",
                 "samples.png", CHECKPOINT):
        assert (tmp_path / "full" / name).is_file(), name


def test_resume_with_other_cases_refused(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    tr.save()
    with pytest.raises(CheckpointError, match="other training cases"):
        make_trainer(tiny_site, "A", 1, tiny_cfg, tmp_path, resume=True)


def test_shape_init_moves_g_shape_to_the_fitted_parameters(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    target = tr.steps.shape_fit_targets()
    assert target.shape == (tr.data.n_labelled, 21) and target.abs().max() <= 1
    z = tr.nets.z_lab.codes
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(tr.nets.g_shape(z), target.clamp(-0.97, 0.97)))
    after = tr.steps.run_shape_init(tr.opt["phase1"], 30)["shape_init"]
    assert after < 0.5 * before
    assert all(p.grad is None for p in tr.nets.g_material.parameters())


def test_unlabelled_step_fits_the_coarse_volume(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    tr.start_phase3()
    losses = tr.steps.update_latents(torch.tensor([0]), tr.opt["unlabelled"])
    assert {"mse", "l1", "g_adv", "fm"} <= set(losses) and losses["mse"] > 0


def test_structure_mean_term_sets_the_structures_levels(tiny_site, tiny_cfg, tmp_path):
    from fedsim_app.models.losses import structure_levels

    tr = _trainer(tiny_site, tiny_cfg.replace(w_smean=1.0), tmp_path)
    st = tr.steps
    idx = torch.arange(tr.data.n_labelled)
    losses, coarse = st.shape_material_losses(idx)
    want = structure_levels(st.coarse_real[idx], st.coarse_masks[idx])
    got = structure_levels(coarse.detach() / 1000, st.coarse_masks[idx])
    present = st.coarse_masks[idx, 1:].sum((2, 3, 4)) > 0
    assert losses["smean"].item() == pytest.approx(float(((got - want)[present] ** 2).mean()),
                                                   rel=1e-4)
    losses["smean"].backward()
    assert tr.nets.z_lab.codes.grad.abs().sum() > 0
    # the term reaches the per-structure material head
    assert tr.nets.g_material.structures[0].weight.grad.abs().sum() > 0
    # a few steps of it alone bring the structures' levels closer
    opt = torch.optim.Adam([*tr.nets.g_material.parameters(), *tr.nets.z_lab.parameters()],
                           lr=1e-2)
    first = losses["smean"].item()
    for _ in range(6):
        opt.zero_grad()
        st.shape_material_losses(idx)[0]["smean"].backward()
        opt.step()
    assert st.shape_material_losses(idx)[0]["smean"].item() < 0.5 * first


def test_structure_mean_term_off_at_weight_zero(tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg.replace(w_smean=0.0), tmp_path)
    losses, _ = tr.steps.shape_material_losses(torch.arange(tr.data.n_labelled))
    assert set(losses) == {"iou", "mse"}


def test_case_frame_scales_each_scan_onto_the_frame(tiny_site, tiny_cfg, tmp_path):
    """frame = "case": a scan's own field of view fills the frame, so its heart covers
    (frame / field of view)³ times the voxels it covers in millimetres ("fixed")."""
    from fedsim_app.io.nifti import read_raw_header
    from fedsim_app.train.data import load_site_data, split_cases

    tr = _trainer(tiny_site, tiny_cfg.replace(frame="case"), tmp_path)
    grid = tr.data.grid
    fixed = load_site_data(tiny_site, grid, n_labelled=2)
    case = load_site_data(tiny_site, grid, n_labelled=2, frame="case")
    assert torch.equal(tr.data.labels, case.labels) and case.case_ids == fixed.case_ids
    assert case.images.shape == fixed.images.shape
    for i, files in enumerate(split_cases(tiny_site)["train"][:2]):
        header = read_raw_header(files.image)
        fov = max(n * s for n, s in zip(header.shape, header.pixdim, strict=False))
        k = grid.extent_mm[0] / fov
        ratio = int((case.labels[i] > 0).sum()) / int((fixed.labels[i] > 0).sum())
        assert ratio == pytest.approx(k ** 3, rel=0.15)
        assert tr.data.fov_mm[i] == pytest.approx(fov, rel=1e-4)
    # the checkpoint keeps every training scan's field of view: export's millimetres
    assert tr.state_dict()["scan_fov_mm"] == pytest.approx(list(tr.data.fov_mm))
    assert len(tr.data.fov_mm) == len(tr.data.images)
    with pytest.raises(Exception, match="frame must be one of fixed, case"):
        tiny_cfg.replace(frame="scanner")


def test_mode_seeking_term_only_when_weighted_and_it_keeps_the_injected_noise(
        tiny_site, tiny_cfg, tmp_path):
    tr = _trainer(tiny_site, tiny_cfg, tmp_path)
    idx = torch.tensor([0])
    coarse = tr.steps.coarse_of(tr.nets.z_lab(idx), tr.data.labels[:1]).detach()
    assert "ms" not in tr.steps.enhancer_losses(coarse, idx, tr.data.labels[:1])
    assert "noise_gain" not in tr.nets.enhancer.state_dict()
    cfg = tiny_cfg.replace(enhancer_noise="inject", w_ms=0.5)
    tr = _trainer(tiny_site, cfg, tmp_path / "ms")
    with torch.no_grad():  # an enhancer past its identity start
        tr.nets.enhancer.tail[1].weight.normal_(std=0.1)
    st = tr.steps
    losses = st.enhancer_losses(coarse, idx, tr.data.labels[:1])
    # two draws through the same enhancer differ: the term is finite and below its bound
    assert math.isfinite(float(losses["ms"])) and float(losses["ms"]) < -math.log(1e-4) - 1
    st.weighted({"ms": losses["ms"]}).backward()
    gain = tr.nets.enhancer.noise_gain.grad
    # lowering the term raises the gain: more of the draw, more difference between draws
    assert gain is not None and float(gain.sum()) < 0
    assert st.weighted({"ms": torch.tensor(2.0)}).item() == pytest.approx(1.0)  # w_ms 0.5


def test_mode_seeking_term_trains_the_enhancer_only(tiny_site, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(enhancer_noise="inject", w_ms=0.5)
    tr = _trainer(tiny_site, cfg, tmp_path)
    with torch.no_grad():
        tr.nets.enhancer.tail[1].weight.normal_(std=0.1)
    st, idx = tr.steps, torch.tensor([0])
    coarse = st.coarse_of(tr.nets.z_lab(idx), tr.data.labels[:1])
    st.enhancer_losses(coarse, idx, tr.data.labels[:1])["ms"].backward()
    assert tr.nets.z_lab.codes.grad is None or not tr.nets.z_lab.codes.grad.any()
    assert all(p.grad is None for p in tr.nets.g_material.parameters())


@pytest.mark.parametrize("bad,match", [
    ({"enhancer_noise": "output"}, "enhancer_noise must be one of input, inject"),
    ({"l1_box": 4}, "l1_box must be 0 .* or an odd box size, got 4"),
    ({"w_ms": -0.5}, "w_ms must be 0 .* or positive"),
    ({"refit_smean": -1.0}, "refit_smean must be 0 .* or positive, got -1.0"),
])
def test_noise_settings_refused_with_what_is_allowed(tiny_cfg, bad, match):
    with pytest.raises(Exception, match=match):
        tiny_cfg.replace(**bad)


@pytest.mark.parametrize("refit_smean,want", [(0.0, 2.0), (10.0, 10.0)])
def test_refit_weighs_the_structure_means_as_set(tiny_cfg, monkeypatch, refit_smean, want):
    # 0: the training's own ratio w_smean / w_mse; otherwise the setting
    from types import SimpleNamespace

    from fedsim_app.train import quality

    seen = {}
    monkeypatch.setattr(quality, "fit_latents",
                        lambda *a, **kw: seen.update(kw) or "z")
    cfg = tiny_cfg.replace(w_smean=4.0, w_mse=2.0, refit_smean=refit_smean)
    nets = SimpleNamespace(z_lab=SimpleNamespace(codes=torch.zeros(2, 32)), g_material=None)
    assert quality.refit_latents(cfg, None, nets, None, torch.zeros(3, 4), None,
                                 n_iter=7) == "z"
    assert seen == {"n_iter": 7, "w_smean": want}
