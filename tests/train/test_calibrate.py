"""The enhancer's texture gain: what it scales, what it leaves, and its calibration."""

import pytest
import torch

from fedsim_app.models.enhance_infer import plan_enhancer
from fedsim_app.models.enhancer import SiteEnhancer
from fedsim_app.train.calibrate import GAIN_RANGE, texture_gains
from fedsim_app.train.glo import CHECKPOINT
from fedsim_app.train.quality import noise_voxels, pooled_noise_sd
from fedsim_app.train.session import make_trainer


def _net(texture_gain=True, seed=0):
    torch.manual_seed(seed)
    net = SiteEnhancer(width=8, n_down=1, spade_hidden=8, noise="inject",
                       texture_gain=texture_gain)
    with torch.no_grad():  # a trained-looking net
        for p in net.parameters():
            p.normal_(std=0.1)
        net.skip_shift.normal_(std=0.3)
    return net


def _inputs(n=4, size=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n, size, size, dtype=torch.long)
    labels[:, 2:9, 2:9], labels[:, 9:14, 4:12], labels[:, 3:7, 10:15] = 1, 5, 7
    return (torch.randn(n, 1, size, size, generator=g) * 0.3, labels,
            torch.rand(n, generator=g), torch.randn(n, 1, size, size, generator=g))


def test_gain_of_ones_is_the_enhancer_without_it_and_only_then_in_the_state_dict():
    plain = _net(texture_gain=False)
    assert "texture_gain" not in plain.state_dict()  # older checkpoints load as they are
    net = _net()
    net.load_state_dict(plain.state_dict(), strict=False)
    assert net.texture_gain.tolist() == [1.0] * 8
    x = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(net(*x[:3], noise=x[3]), plain(*x[:3], noise=x[3]))


def test_gain_scales_each_structures_centred_texture_and_keeps_its_means():
    net = _net()
    coarse, labels, k, noise = _inputs()
    with torch.no_grad():
        net.texture_gain.zero_()
        flat = net(coarse, labels, k, noise=noise)[:, 0]
        net.texture_gain.fill_(1.0)
        one = net(coarse, labels, k, noise=noise)[:, 0]
        net.texture_gain.copy_(torch.tensor([5.0, 0.5, 1, 1, 1, 2.0, 1, 3.0]))
        got = net(coarse, labels, k, noise=noise)[:, 0]
    want = flat + (one - flat) * torch.tensor([1.0, 0.5, 1, 1, 1, 2.0, 1, 3.0])[labels]
    torch.testing.assert_close(got, want)
    assert float((one - flat)[labels > 0].abs().mean()) > 0.01  # there is a texture
    # the background takes no gain (its entry is not used): the network's output there
    torch.testing.assert_close(got[labels == 0], one[labels == 0])
    for c in (1, 5, 7):  # each structure's mean in each slice is its level whatever the gain
        m = (labels == c).float()
        got_mean, level = ((v * m).sum((1, 2)) / m.sum((1, 2)) for v in (got, flat))
        torch.testing.assert_close(got_mean, level, atol=1e-5, rtol=0)
    # the inference plan applies it too
    torch.testing.assert_close(plan_enhancer(net)(coarse, labels, k, noise=noise)[:, 0], got,
                               rtol=0, atol=1e-5 * float(got.abs().max()))


def _volumes(sd_real, sd_fake, seed=0):
    """Two 12³ volumes, LV (1) a 6³ block, aorta (6) a 3³ one (no eroded interior):
    constant levels, textures of the given SDs in both structures."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(2, 12, 12, 12, dtype=torch.long)
    labels[:, 2:8, 2:8, 2:8] = 1
    labels[:, 8:11, 8:11, 8:11] = 6
    level = torch.where(labels == 1, 0.3, torch.where(labels == 6, 0.4, -0.8)).float()
    heart = (labels > 0).float()
    real = level + sd_real * torch.randn(labels.shape, generator=g) * heart
    fake = level + sd_fake * torch.randn(labels.shape, generator=g) * heart
    return fake, real, labels


@pytest.mark.parametrize("sd_fake", [0.03, 0.1])
def test_gain_brings_the_interiors_noise_figure_to_the_real_ones(sd_fake):
    fake, real, labels = _volumes(0.05, sd_fake)
    gains = texture_gains(fake, real, labels, 8)
    assert gains.shape == (8,)
    target = pooled_noise_sd(real, labels)
    got = pooled_noise_sd(fake, labels)
    assert abs(float(gains[1]) - target / got) < 1e-5
    # near the textures' SD ratio (128 interior voxels estimate each SD to about 6 %)
    assert abs(float(gains[1]) - 0.05 / sd_fake) < 0.2 * 0.05 / sd_fake
    # the texture scaled by the gain inside the structure (its level is one value in the
    # interior, where the figure measures) has the real figure
    scaled = (fake - 0.3) * torch.where(labels == 1, gains[1], 1.0) + 0.3
    assert pooled_noise_sd(scaled, labels) == pytest.approx(target, rel=1e-5)
    # the background, the structures no volume holds and the aorta (too thin for an
    # interior: its figure would be its edges') are left alone
    assert gains[0] == 1 and gains[2:].tolist() == [1.0] * 6


def test_gain_leaves_interiors_of_a_few_voxels_alone():
    """LA (4) a 4×4×3 block in each volume: a 4-voxel interior each, 8 together, but no
    volume with MIN_INTERIOR of its own; its texture 3x the real one's keeps gain 1."""
    fake, real, labels = _volumes(0.05, 0.05)
    labels[:, 1:5, 7:11, 8:11] = 4
    la = labels == 4
    fake = torch.where(la, 0.2 + 0.15 * torch.randn(labels.shape), fake)
    real = torch.where(la, 0.2 + 0.05 * torch.randn(labels.shape), real)
    assert [noise_voxels(lab, 4) for lab in labels] == [4, 4]
    assert texture_gains(fake, real, labels, 8)[4] == 1


def test_gain_stays_in_its_range():
    fake, real, labels = _volumes(0.5, 0.01)  # a texture 50x too weak
    assert float(texture_gains(fake, real, labels, 8)[1]) == GAIN_RANGE[1]
    fake, real, labels = _volumes(0.01, 0.5)
    assert float(texture_gains(fake, real, labels, 8)[1]) == GAIN_RANGE[0]


def test_gain_measures_the_enhanced_volumes_over_their_own_labels():
    """The model's own samples: the enhanced volumes' LV is another block than the real
    volumes'; each side's figure is taken in its own LV's interior, and a structure with
    an interior on one side only keeps gain 1."""
    _, real, labels = _volumes(0.05, 0.05)
    g = torch.Generator().manual_seed(3)
    own = torch.zeros(3, 12, 12, 12, dtype=torch.long)
    own[:, 3:10, 1:8, 2:9] = 1  # a 7³ LV, shifted
    own[:, 1:6, 8:12, 7:12] = 4  # LA with an interior here only
    fake = torch.where(own > 0, 0.3 + 0.1 * torch.randn(own.shape, generator=g), -0.8)
    gains = texture_gains(fake, real, labels, 8, enhanced_labels=own)
    want = pooled_noise_sd(real, labels) / pooled_noise_sd(fake, own)
    assert float(gains[1]) == pytest.approx(want, rel=1e-5)
    assert abs(float(gains[1]) - 0.5) < 0.1  # 0.05 / 0.1, the two textures' SDs
    assert noise_voxels(own[0], 4) >= 8 and gains[4] == 1  # no real LA interior
    # measured over the real labels instead, the shifted LV's edges would count
    assert float(texture_gains(fake, real, labels, 8)[1]) != pytest.approx(want, rel=0.05)


@pytest.mark.parametrize("samples", [0, 8])
def test_texture_gain_calibrated_at_phase3s_end(tiny_site, tiny_cfg, tmp_path, samples):
    """On the labelled volumes with refitted latents (0), or on ``texture_samples`` of the
    model's own samples drawn from its prior (seed + 3) against the labelled volumes."""
    from fedsim_app.train.calibrate import fit_texture_gain
    from fedsim_app.train.model_io import load_site_models
    from fedsim_app.train.quality import refit_latents

    off = make_trainer(tiny_site, "A", 2, tiny_cfg, tmp_path / "off")
    assert "texture_gain" not in off.nets.enhancer.state_dict()  # off: the enhancer of before
    # LV interiors at 32³
    cfg = tiny_cfg.replace(label_size=32, texture_calibration=True, texture_samples=samples)
    tr = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "run")
    enh = tr.nets.enhancer
    assert enh.texture_gain.tolist() == [1.0] * 8
    tr.run()
    n = tr.data.n_labelled
    images, labels = tr.data.images[:n], tr.data.labels[:n]
    own = None
    if samples:
        coarse, own = tr.steps.own_samples(tr.prior, samples, cfg.seed + 3)
        assert own.shape == (samples, 32, 32, 32)
        assert sum(noise_voxels(lab, 1) >= 8 for lab in own) >= 1  # an LV to measure in
    else:
        tr.nets.g_material.eval()
        z = refit_latents(cfg, tr.prior, tr.nets, tr.chain, images, labels,
                          n_iter=cfg.level_refit_steps)
        with torch.no_grad():
            coarse = tr.steps.coarse_of(z, labels)
    want = fit_texture_gain(enh, coarse, images, labels, seed=cfg.seed, own_labels=own)
    torch.testing.assert_close(enh.texture_gain, want)
    assert float((want - 1).abs().max()) > 0.01  # a structure with an interior was scaled
    model = load_site_models(tmp_path / "run" / CHECKPOINT)["A"]
    assert model.config.texture_calibration and model.config.texture_samples == samples
    torch.testing.assert_close(model.chain().enhancer.texture_gain, want)


def test_texture_samples_without_phase3_draw_from_the_normal_phase3_would_fit(
        tiny_site, tiny_cfg, tmp_path, monkeypatch):
    """No phase 3, so no prior: phase 4's calibration draws its samples from the normal
    fitted to the labelled latents, and refits no latents (the ``skip`` levels and the
    texture on samples read none)."""
    from fedsim_app.train import steps
    from fedsim_app.train.calibrate import fit_texture_gain
    from fedsim_app.train.latents import latent_prior

    def no_refit(*args, **kwargs):
        raise AssertionError("latents refitted that nothing reads")

    monkeypatch.setattr(steps, "refit_latents", no_refit)
    cfg = tiny_cfg.replace(label_size=32, phase3_epochs=0, phase4_epochs=1,
                           texture_calibration=True, texture_samples=8)
    assert cfg.enhancer_levels == "skip"
    tr = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "run")
    tr.run()
    assert tr.prior is None
    n = tr.data.n_labelled
    coarse, own = tr.steps.own_samples(latent_prior(tr.nets.z_lab.codes), 8, cfg.seed + 3)
    want = fit_texture_gain(tr.nets.enhancer, coarse, tr.data.images[:n], tr.data.labels[:n],
                            seed=cfg.seed, own_labels=own)
    torch.testing.assert_close(tr.nets.enhancer.texture_gain, want)
    assert float((want - 1).abs().max()) > 0.01


def test_texture_samples_refused_below_zero(tiny_cfg):
    with pytest.raises(Exception, match="texture_samples must be 0 .* got -1"):
        tiny_cfg.replace(texture_samples=-1)
