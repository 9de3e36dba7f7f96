"""The run's sample grid: real, labels, coarse CT and enhanced slices of training volumes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from fedsim_app.models.enhance import level_inputs
from fedsim_app.models.generator import enhancer_conditioning
from fedsim_app.models.shape_stage import decode, hard_labels
from fedsim_app.train.runlog import write_sample_grid


@contextlib.contextmanager
def evaluating(*modules):
    """Run a block with modules in eval mode, then restore their modes."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


@torch.no_grad()
def mid_slices(steps, z: torch.Tensor, labels: torch.Tensor | None):
    """The model's (generated labels, coarse up, enhanced) mid-axial slices of one latent
    (1, 32); ``labels`` (1, K, H, W) replace the generated ones when given."""
    nets, chain = steps.nets, steps.chain
    if labels is None:
        labels = hard_labels(chain.ssm, decode(chain.ssm, nets.g_shape(z)), chain.grid)
    coarse = steps.coarse_of(z, labels)
    k = labels.shape[1] // 2
    coarse_up, lab, k_frac = enhancer_conditioning(coarse, labels, [k])
    # a fixed noise draw: sampling never touches the training generator
    noise = torch.randn(coarse_up.shape, generator=torch.Generator().manual_seed(0))
    enhanced = nets.enhancer(coarse_up, lab, k_frac, noise=noise.to(coarse_up.device),
                             **level_inputs(nets.enhancer, coarse, labels, 1))
    return labels[0, k].cpu().numpy(), coarse_up[0, 0].cpu().numpy(), \
        enhanced[0, 0].cpu().numpy()


def write_samples(path: str | Path, steps) -> Path:
    """Rows: labelled training volume 0 (ground-truth labels in), then its generated
    labels, then unlabelled volume 0 when phase 3 has latents for it."""
    nets, data = steps.nets, steps.data
    k = data.images.shape[1] // 2
    rows = []
    with evaluating(*nets.modules().values()):
        z = nets.z_lab(torch.tensor([0]))
        real = data.images[0, k].cpu().numpy()
        rows.append(("labelled 0, GT labels", [real, *mid_slices(steps, z, data.labels[:1])]))
        rows.append(("labelled 0, generated", [real, *mid_slices(steps, z, None)]))
        if nets.z_unl is not None and data.n_unlabelled:
            zu = nets.z_unl(torch.tensor([0]))
            rows.append(("unlabelled 0", [data.images[data.n_labelled, k].cpu().numpy(),
                                          *mid_slices(steps, zu, None)]))
    return write_sample_grid(path, rows, ["gray", "labels", "gray", "gray"])
