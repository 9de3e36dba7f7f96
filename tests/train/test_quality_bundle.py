"""Bundles of trained sites and the quality figures on a tiny run."""

import math
import re

import pytest
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.train.data import load_site_data
from fedsim_app.train.model_io import load_site_models, write_bundle
from fedsim_app.train.quality import (
    Effort,
    c2st,
    c2st_accuracy,
    evaluate_site,
    heart_slices,
    noise_sd,
    noise_voxels,
    pooled_noise_sd,
    worst,
)
from fedsim_app.train.session import make_trainer


@pytest.mark.slow
def test_bundle_and_quality_on_a_tiny_run(tiny_site, tiny_cfg, tmp_path):
    tr = make_trainer(tiny_site, "A", 2, tiny_cfg, tmp_path / "run")
    with pytest.raises(FedSimError, match="not finished"):
        write_bundle([tr.save()], tmp_path / "b.pt")
    tr.run()
    bundle = write_bundle([tmp_path / "run" / "checkpoint.pt"], tmp_path / "b.pt")
    models = load_site_models(bundle)
    direct = load_site_models(tmp_path / "run" / "checkpoint.pt")
    assert set(models) == {"A"} == set(direct)
    w_half = models["A"].nets.g_shape.head.weight
    w_full = direct["A"].nets.g_shape.head.weight
    assert torch.allclose(w_half, w_full, rtol=1e-3, atol=1e-4)  # float16 storage
    model = direct["A"]
    chain = model.chain()
    train = load_site_data(tiny_site, chain.grid, n_labelled=model.n_labelled)
    test = load_site_data(tiny_site, chain.grid, n_labelled=0, subset="test")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    quick = Effort(fit_steps=20)  # the figures' 300 take 80 s here
    q = evaluate_site(model, train, test, effort=quick)
    # its seeded draws (texture, classifiers) leave the caller's random state alone
    assert torch.equal(torch.get_rng_state(), before)
    assert evaluate_site(model, train, test, effort=quick) == q
    assert 0 <= q.shape_iou <= 1 and 0 <= q.shape_dice <= 1
    assert q.mat_hu_err >= 0 and q.enh_hu_err >= 0 and q.noise_ratio > 0
    assert 0 <= q.c2st <= 1 and 0 <= q.c2st_coarse <= 1
    assert q.c2st_lo <= q.c2st <= q.c2st_hi
    assert re.fullmatch(r"shape_iou=\S+ mat_hu_err=\S+ enh_hu_err=\S+ noise_ratio=\S+ "
                        r"c2st=\S+ c2st_coarse=\S+", worst([q]))


def test_c2st_separates_different_and_not_identical_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(256, 1, 16, 16, generator=g) * 0.1
    other = torch.randn(256, 1, 16, 16, generator=g) * 0.1 + 0.5
    same = torch.randn(256, 1, 16, 16, generator=g) * 0.1
    assert c2st_accuracy(real[:128], other[:128], real[128:], other[128:]) > 0.95
    assert c2st_accuracy(real[:128], same[:128], real[128:], same[128:]) < 0.7
    torch.manual_seed(5)
    before = torch.get_rng_state()
    c2st_accuracy(real[:8], other[:8], real[8:16], other[8:16], n_iter=2)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random state untouched


def test_c2st_is_the_mean_of_its_classifiers():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(64, 1, 16, 16, generator=g) * 0.1
    other = torch.randn(64, 1, 16, 16, generator=g) * 0.1 + 0.05
    res = c2st(real[:32], other[:32], real[32:], other[32:], seed=3, n_seeds=3, n_iter=20)
    accs = [c2st_accuracy(real[:32], other[:32], real[32:], other[32:], seed=s, n_iter=20)
            for s in (3, 4, 5)]
    assert res.mean == pytest.approx(sum(accs) / 3)
    assert (res.lo, res.hi) == (min(accs), max(accs))


def test_c2st_names_an_empty_set():
    some = torch.zeros(4, 1, 8, 8)
    with pytest.raises(FedSimError, match="model held-out set has no slices"):
        c2st(some, some, some, some[:0], n_seeds=1, n_iter=1)


def test_heart_slices_keeps_the_slices_that_cross_a_structure():
    vols = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(2, 4, 3, 3)
    labels = torch.zeros(2, 4, 3, 3, dtype=torch.long)
    labels[0, 1, 1, 1] = 7
    labels[1, 2:4, 0, 0] = 1
    out = heart_slices(vols, labels)
    assert out.shape == (3, 1, 3, 3)
    assert torch.equal(out[:, 0], torch.stack([vols[0, 1], vols[1, 2], vols[1, 3]]))


def test_noise_sd_of_known_noise():
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(16, 16, 16, dtype=torch.long)
    labels[2:14, 2:14, 2:14] = 1
    vol = torch.randn(16, 16, 16, generator=g) * 0.05
    # x − box₃(x) of white noise has SD σ·sqrt(1 − 1/27)
    assert noise_sd(vol, labels) == pytest.approx(0.05 * (1 - 1 / 27) ** 0.5, rel=0.1)
    assert noise_sd(2 * vol, labels) == pytest.approx(2 * noise_sd(vol, labels), rel=1e-5)
    assert noise_voxels(labels) == 10 ** 3  # the 12³ cube less its one-voxel shell


def test_noise_of_a_structure_without_interior_is_its_edges():
    """A 2-voxel-thin LV has no eroded interior: the figure is taken over the whole LV,
    and a sharp step inside it then reads as 'noise' though the volume has none."""
    labels = torch.zeros(16, 16, 16, dtype=torch.long)
    labels[4:12, 4:12, 7:9] = 1
    assert noise_voxels(labels) == 0
    vol = torch.zeros(16, 16, 16)
    vol[:, :, 8:] = 0.3  # an edge through the structure, no noise anywhere
    assert noise_sd(vol, labels) > 0.05


def _cube(lo, hi, n=16):
    labels = torch.zeros(n, n, n, dtype=torch.long)
    labels[lo:hi, lo:hi, lo:hi] = 1
    return labels


def test_pooled_noise_weighs_each_volume_by_its_interior():
    """Two volumes, one with a 10³ interior and noise SD 0.05, one with a 1-voxel interior
    (a 3³ LV) whose residual there is far off: the pooled figure is the first volume's,
    a mean of the two volumes' figures would be ruined by the second."""
    g = torch.Generator().manual_seed(0)
    big, small = _cube(2, 14), _cube(6, 9)
    assert (noise_voxels(big), noise_voxels(small)) == (1000, 1)
    vol_big = torch.randn(16, 16, 16, generator=g) * 0.05
    vol_small = torch.zeros(16, 16, 16)
    vol_small[7, 7, 7] = 5.0  # one interior voxel: no deviation about its own mean
    assert pooled_noise_sd([vol_big, vol_small], [big, small]) == pytest.approx(
        noise_sd(vol_big, big), rel=1e-6)
    # the pooled SD is the root of the volumes' summed squares over their summed degrees
    # of freedom, each about its own mean (an offset between volumes is not noise)
    other = torch.randn(16, 16, 16, generator=g) * 0.02 + 0.5
    resid = [v - torch.nn.functional.avg_pool3d(v[None, None], 3, stride=1, padding=1,
                                                 count_include_pad=False)[0, 0]
             for v in (vol_big, other)]
    inner = _cube(3, 13).bool()  # the 12³ cube's eroded interior
    ss = sum(float(((r[inner] - r[inner].mean()) ** 2).sum()) for r in resid)
    assert pooled_noise_sd([vol_big, other], [big, big]) == pytest.approx(
        (ss / (2 * 999)) ** 0.5, rel=1e-6)


def test_pooled_noise_without_interior_takes_the_edges_or_nan():
    thin = torch.zeros(16, 16, 16, dtype=torch.long)
    thin[4:12, 4:12, 7:9] = 1
    vol = torch.zeros(16, 16, 16)
    vol[:, :, 8:] = 0.3
    assert pooled_noise_sd([vol, vol], [thin, thin]) == pytest.approx(noise_sd(vol, thin))
    assert pooled_noise_sd([vol, vol], [thin, thin]) > 0.05
    assert math.isnan(pooled_noise_sd([vol], [thin], interior_only=True))
    absent = torch.zeros(16, 16, 16, dtype=torch.long)
    assert math.isnan(pooled_noise_sd([vol], [absent]))


def test_initial_bundle_holds_the_presets_networks_untrained(tmp_path):
    """The latency benchmark's stand-in for presets not trained here: the preset's sizes,
    a prior fitted to the initial latents, loadable by every engine."""
    from fedsim_app.train.config import preset
    from fedsim_app.train.glo import build_nets
    from fedsim_app.train.model_io import initial_bundle

    path = initial_bundle(tmp_path / "u.pt", "smoke", sites=("A", "B"), n_labelled=3)
    models = load_site_models(path)
    assert set(models) == {"A", "B"}
    m = models["B"]
    assert m.config.label_size == preset("smoke").label_size and m.n_labelled == 3
    fresh = build_nets(preset("smoke", seed=1), 3)  # site B: seed 1, as initialised
    assert torch.equal(m.nets.g_shape.head.weight, fresh.g_shape.head.weight)
    assert m.prior["mean"].shape == (m.config.latent_dim,) and len(m.case_ids) == 3


def test_heldout_fit_lowers_its_objective(tiny_site, tiny_cfg, tmp_path):
    import torch.nn.functional as F

    from fedsim_app.models.generator import coarse_target
    from fedsim_app.models.losses import structure_mean_loss
    from fedsim_app.models.material import coarse_label_masks
    from fedsim_app.train.quality import HU, fit_latents

    tr = make_trainer(tiny_site, "A", 2, tiny_cfg, tmp_path / "run")
    chain, g = tr.steps.chain, tr.nets.g_material.eval()
    images, labels = tr.data.images[:2], tr.data.labels[:2]
    s = chain.config.coarse_size
    target = coarse_target(images * HU, s) / HU
    masks = coarse_label_masks(labels, s)

    def objective(z):  # the coarse MSE plus the structure-mean term at the MSE's weight
        with torch.no_grad():
            coarse = chain.coarse_ct(chain.mu(g(z, labels))) / HU
            return float(F.mse_loss(coarse, target) + structure_mean_loss(coarse, target, masks))

    init = torch.zeros(2, g.latent_dim)
    z = fit_latents(chain, g, images, labels, init, n_iter=15, w_smean=1.0)
    assert objective(z) < 0.8 * objective(init)


def test_target_misses_names_each_figure_off_its_target():
    from fedsim_app.train.quality import target_misses, target_text

    good = {"shape_iou": 0.85, "shape_dice": 0.75, "mat_hu_err": 40.0, "enh_hu_err": 30.0,
            "noise_ratio": 0.75, "c2st": 0.75, "c2st_coarse": 0.95}
    assert target_misses(good) == []  # every bound is inclusive
    assert target_misses({**good, "noise_ratio": 1.25}) == []
    bad = {**good, "noise_ratio": 1.3, "c2st": 0.8, "shape_iou": float("nan")}
    assert target_misses(bad) == ["shape_iou", "noise_ratio", "c2st"]
    assert target_text("noise_ratio") == "1 ± 0.25" and target_text("c2st") == "<= 0.75"
