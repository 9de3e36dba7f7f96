"""The enhancer's inference plan computes its forward, and the chain's enhance stage gives
the same CT however the slices are grouped into calls."""

import pytest
import torch
from stand_ins import RecordingEnhancer

from fedsim_app.errors import FedSimError
from fedsim_app.models.enhance import enhance, slices_per_call, takes_noise
from fedsim_app.models.enhance_infer import EnhancerPlan, conditioning_map, plan_enhancer
from fedsim_app.models.enhancer import SiteEnhancer, conditioning
from fedsim_app.shape.soft import torch_threads


def _net(width, n_down, hidden, seed=0, noise="input"):
    torch.manual_seed(seed)
    net = SiteEnhancer(width=width, n_down=n_down, spade_hidden=hidden, noise=noise)
    with torch.no_grad():  # a trained-looking net: no zero residual, no zero biases
        for p in net.parameters():
            p.normal_(std=0.1)
        net.skip_scale.uniform_(0.0, 1.5)  # a fitted label-wise skip
        net.skip_shift.normal_(std=0.3)
    return net


def _inputs(n, size, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, size, size, generator=g) * 0.3,
            torch.randint(0, 8, (n, size, size), generator=g), torch.rand(n, generator=g),
            torch.randn(n, 1, size, size, generator=g))


@pytest.mark.parametrize("width,n_down,hidden,size", [(8, 1, 8, 16), (24, 2, 16, 32),
                                                      (12, 3, 8, 32), (16, 0, 4, 8)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_plan_computes_the_enhancers_forward(width, n_down, hidden, size, channels_last):
    net = _net(width, n_down, hidden)
    coarse, labels, k, noise = _inputs(3, size)
    with torch.no_grad():
        want = net(coarse, labels, k, noise=noise)
    plan = plan_enhancer(net, channels_last=channels_last)
    assert isinstance(plan, EnhancerPlan)
    got = plan(coarse, labels, k, noise=noise)
    assert want.std() > 0.1  # the comparison is not between two near-zero maps
    # float32, same operations regrouped: within 1e-5 of the output (0.01 HU)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))
    assert not torch.allclose(plan(coarse, labels, k, noise=-noise), want, atol=1e-3)


@pytest.mark.parametrize("n_down", [0, 2])
def test_plan_computes_the_forward_with_injected_noise(n_down):
    net = _net(16, n_down, 8, noise="inject")
    with torch.no_grad():
        net.noise_gain.uniform_(0.5, 1.5)  # a kept gain: the draw moves the slices
    coarse, labels, k, noise = _inputs(3, 16)
    with torch.no_grad():
        want = net(coarse, labels, k, noise=noise)
        other = net(coarse, labels, k, noise=torch.roll(noise, 1, -1))
    got = plan_enhancer(net)(coarse, labels, k, noise=noise)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))
    # the gain is what injects: at zero it is the "input" enhancer of the same weights
    flat = _net(16, n_down, 8)
    flat.load_state_dict({k_: v for k_, v in net.state_dict().items() if k_ != "noise_gain"})
    with torch.no_grad():
        want_flat = flat(coarse, labels, k, noise=noise)
        assert float((want - want_flat).abs().mean()) > 0.1 * float(want.std())
        assert float((want - other).abs().mean()) > 0.1 * float(want.std())
        net.noise_gain.zero_()
        torch.testing.assert_close(net(coarse, labels, k, noise=noise), want_flat)


def test_injected_noise_is_a_parameter_only_of_an_inject_enhancer():
    # an "input" enhancer's state dict is what it was before injection existed, so the
    # checkpoints written before it load as they are
    assert "noise_gain" not in _net(8, 1, 8).state_dict()
    net = _net(8, 1, 8, noise="inject")
    assert net.noise_gain.shape == (8,) and net.noise_gain.requires_grad
    with pytest.raises(ValueError, match="noise must be one of input, inject"):
        SiteEnhancer(width=8, n_down=1, spade_hidden=8, noise="output")


def test_plan_bfloat16_stays_within_its_stated_tolerance():
    # bf16 convolutions keep 8 mantissa bits: on a net of this scale the slices move by
    # under 2 % of their spread on average, which is why float32 stays the default
    net = _net(24, 2, 16)
    coarse, labels, k, noise = _inputs(4, 32)
    with torch.no_grad():
        want = net(coarse, labels, k, noise=noise)
    got = plan_enhancer(net, dtype=torch.bfloat16)(coarse, labels, k, noise=noise)
    assert got.dtype == torch.float32
    err = (got - want).abs()
    assert float(err.mean()) < 0.02 * float(want.std())
    assert float(err.max()) < 0.25 * float(want.std())


def test_conditioning_map_is_the_enhancers():
    coarse, labels, k, _ = _inputs(5, 16)
    torch.testing.assert_close(conditioning_map(coarse, labels, k, 8),
                               conditioning(coarse, labels, k, 8), rtol=0, atol=0)


def test_other_modules_run_their_own_forward():
    assert plan_enhancer(RecordingEnhancer()) is None
    net = _net(8, 1, 8)
    net.blocks[0].activation = torch.nn.ReLU()  # not the planned structure
    assert plan_enhancer(net) is None
    assert takes_noise(_net(8, 1, 8)) and not takes_noise(RecordingEnhancer())


def _volume(b=2, k_total=8, size=16, seed=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 4, 4, 4, generator=g) * 300,
            torch.randint(0, 8, (b, k_total, size, size), generator=g))


def test_enhance_does_not_depend_on_the_grouping_of_slices_or_on_gradients():
    net = _net(8, 1, 8)
    coarse, labels = _volume()
    outs = []
    for chunk, threads in ((1, 1), (3, 1), (8, 1), (1, 2), (3, 3)):  # threads: workers
        torch.manual_seed(7)
        with torch.no_grad(), torch_threads(threads):
            outs.append(enhance(coarse, labels, net, chunk=chunk))
    assert torch.equal(outs[3], outs[0]) and torch.equal(outs[4], outs[1])
    torch.manual_seed(7)
    with_grad = enhance(coarse, labels, net, chunk=5)  # the module's own forward
    assert with_grad.requires_grad
    for out in outs[1:] + [with_grad.detach()]:
        torch.testing.assert_close(out, outs[0], rtol=0, atol=1e-5 * float(outs[0].abs().max()))
    torch.manual_seed(8)
    with torch.no_grad():
        assert not torch.allclose(enhance(coarse, labels, net), outs[0], atol=1.0)


def test_enhance_bad_precision_and_calls_sized_for_the_cache():
    net = _net(8, 1, 8)
    coarse, labels = _volume()
    with pytest.raises(FedSimError, match="precision"):
        enhance(coarse, labels, net, precision="float16")
    with pytest.raises(FedSimError, match="inference plan"):
        enhance(coarse, labels, net, precision="bfloat16")  # gradients on
    assert slices_per_call(_net(24, 2, 16), 1, 128, 128) == 4  # 6 MiB per slice
    assert slices_per_call(_net(64, 2, 16), 1, 128, 128) == 1
    assert slices_per_call(_net(24, 2, 16), 1, 32, 32) == 64


def test_enhance_takes_a_given_noise_draw_and_refuses_a_wrong_one():
    net = _net(8, 1, 8)
    coarse, labels = _volume()
    noise = torch.randn(2, 8, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.manual_seed(7)
        drawn = enhance(coarse, labels, net)
        torch.manual_seed(7)  # the draw enhance makes itself, given: the same CT
        same = enhance(coarse, labels, net, noise=torch.randn(2, 8, 1, 16, 16))
        given = enhance(coarse, labels, net, noise=noise)
        again = enhance(coarse, labels, net, noise=noise, chunk=3)
    assert torch.equal(same, drawn)
    torch.testing.assert_close(again, given, rtol=0, atol=1e-5 * float(given.abs().max()))
    assert not torch.allclose(given, drawn, atol=1.0)
    with pytest.raises(FedSimError, match=r"noise must be \(2, 8, 1, 16, 16\)"):
        enhance(coarse, labels, net, noise=noise[:, :4])
    with pytest.raises(FedSimError, match="draws no texture noise"):
        enhance(coarse, labels, RecordingEnhancer(), noise=noise)
