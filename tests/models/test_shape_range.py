"""G_shape's scale range travels with the network: every chain built with it decodes its
output in the range it was trained in."""

import math

import pytest
import torch

from fedsim_app.models.g_shape import ShapeGenerator
from fedsim_app.models.generator import ChainConfig, Generator
from fedsim_app.models.shape_stage import decode, ssm_for
from fedsim_app.train.config import preset
from fedsim_app.train.glo import build_nets
from fedsim_app.train.session import site_chain


def test_ssm_for_widens_only_the_scale(toy_ssm):
    assert ssm_for(toy_ssm, 0.0) is toy_ssm
    assert ssm_for(toy_ssm, toy_ssm.ranges.log_scale) is toy_ssm
    wide = ssm_for(toy_ssm, 1.0)
    assert wide.ranges.log_scale == 1.0
    assert wide.ranges.translation_mm == toy_ssm.ranges.translation_mm
    assert wide.ranges.mode_sd == toy_ssm.ranges.mode_sd
    assert toy_ssm.ranges.log_scale == pytest.approx(0.25)  # the original is untouched


def test_scale_parameter_reaches_the_wider_range(toy_ssm):
    p = torch.zeros(2, 21, dtype=torch.float64)
    p[1, 20] = -1.0  # the smallest scale
    for log_scale in (0.25, 1.0):
        v = decode(ssm_for(toy_ssm, log_scale), p)  # (2, V, 3)
        c = torch.as_tensor(toy_ssm.center_mm, dtype=v.dtype)
        ratio = (v[1] - c).norm(dim=1).sum() / (v[0] - c).norm(dim=1).sum()
        assert float(ratio) == pytest.approx(math.exp(-log_scale), rel=1e-6)


def test_chains_decode_in_g_shape_range():
    g = ShapeGenerator(log_scale=0.8)
    chain = Generator("A", config=ChainConfig(label_size=16, coarse_size=16),
                      g_shape=g, device="cpu")
    assert chain.ssm.ranges.log_scale == pytest.approx(0.8)
    plain = Generator("A", config=ChainConfig(label_size=16, coarse_size=16), device="cpu")
    assert plain.ssm.ranges.log_scale == pytest.approx(0.25)


def test_training_and_loading_use_the_config_range():
    cfg = preset("smoke", shape_log_scale=0.9)
    assert site_chain("B", cfg).ssm.ranges.log_scale == pytest.approx(0.9)
    nets = build_nets(cfg, 2)
    assert nets.g_shape.log_scale == pytest.approx(0.9)
    assert site_chain("B", cfg, with_nets=nets).ssm.ranges.log_scale == pytest.approx(0.9)
    # configs written before the field existed keep the SSM's own range
    assert preset("smoke").shape_log_scale == 0.0
    assert site_chain("B", preset("smoke")).ssm.ranges.log_scale == pytest.approx(0.25)
