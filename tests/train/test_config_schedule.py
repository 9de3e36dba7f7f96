"""Presets, TOML loading and the phase schedules as asserted values."""

import pytest

from fedsim_app.train.config import ConfigError, load_config, preset
from fedsim_app.train.schedule import lr_factor, set_rates


def test_paper_preset_matches_the_paper():
    cfg = preset("paper")
    assert (cfg.label_size, cfg.material_size, cfg.latent_dim) == (128, 16, 32)
    assert (cfg.lr_labelled, cfg.lr_labelled_gan) == (1e-4, 1e-5)
    assert (cfg.lr_unlabelled, cfg.lr_unlabelled_gan) == (1e-3, 1e-4)
    assert cfg.phase3_epochs == 60 and cfg.constant_fraction == 0.5


def test_presets_are_frozen_and_overridable():
    cfg = preset("smoke", seed=3)
    assert cfg.seed == 3 and cfg.preset == "smoke"
    with pytest.raises(AttributeError):
        cfg.seed = 4  # frozen


def test_unknown_preset_and_key_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("gpu")
    bad = tmp_path / "c.toml"
    bad.write_text('preset = "smoke"\nlabel_sise = 8\n')
    with pytest.raises(ConfigError, match="label_sise"):
        load_config(bad)
    bad.write_text('preset = "smoke"\ndisc_scales = 2\n')
    with pytest.raises(ConfigError, match="too small"):
        load_config(bad)
    bad.write_text('preset = "smoke"\nshape_grad = "magic"\n')
    with pytest.raises(ConfigError, match="shape_grad"):
        load_config(bad)


def test_phase4_off_in_the_paper_preset_and_negative_settings_refused():
    assert preset("paper").phase4_epochs == 0
    assert (preset("cpu").phase4_epochs, preset("cpu").lr_phase4) == (40, 1e-4)
    assert preset("cpu", phase4_epochs=200).phase4_epochs == 200
    with pytest.raises(ConfigError, match="phase4_epochs must be 0 or more, got -1"):
        preset("cpu", phase4_epochs=-1)
    with pytest.raises(ConfigError, match="lr_phase4 must be 0 or more"):
        preset("cpu", lr_phase4=-1e-4)


def test_toml_round_trip(tmp_path):
    cfg = preset("cpu", seed=7, vgg_weights="", coarse_matrix=False)
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg


def test_lr_schedule_constant_then_linear_to_zero():
    # 60 epochs as in the paper: 30 at the full rate, then linear decay to 0
    f = [lr_factor(s, 60) for s in range(60)]
    assert f[:30] == [1.0] * 30
    assert f[30] == pytest.approx(1.0)
    assert f[45] == pytest.approx(0.5)
    assert f[59] == pytest.approx(1 / 30)
    assert lr_factor(60, 60) == 0.0
    assert all(a >= b for a, b in zip(f, f[1:], strict=False))


def test_set_rates_scales_each_group():
    import torch

    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [p1], "lr": 1e-4}, {"params": [p2], "lr": 1e-5}])
    set_rates(opt, [1e-4, 1e-5], 0.5)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(5e-5), pytest.approx(5e-6)]
