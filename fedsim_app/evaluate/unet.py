"""The one U-Net protocol of every row: binary whole-heart segmentation.

MONAI ``UNet`` (3D), ``DiceCELoss`` on softmax outputs, Adam, random patches of
``roi`` voxels in training and :func:`monai.inferers.sliding_window_inference` at test
time. Images come in HU and are windowed to [0, 1] over [-200, 600] HU (soft tissue and
contrast; air and lung all read 0). Every row trains the same network with the same
schedule; rows with synthetic data pre-train ``pretrain_steps`` on it first, then
fine-tune ``steps`` on the labelled real volumes (:func:`pretrain_finetune`). Model
selection (the checkpoint with the best validation Dice, checked every ``val_every``
steps) uses the validation volumes only; with ``patience`` set, a stage stops early once
that many checks in a row have not improved on the best (the plateau check). The network
runs on ``device`` (``auto``: the engine's default device, CUDA when torch sees a GPU);
the volumes stay in host memory and only the batches and sliding-window patches move.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch

from fedsim_app.device import resolve_device
from fedsim_app.evaluate.metrics import dice_scores

WINDOW_HU = (-200.0, 600.0)


@dataclass(frozen=True)
class UNetConfig:
    """Network and schedule; the same for every row of an evaluation."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 2
    roi: int = 64
    batch: int = 2
    lr: float = 1e-3
    steps: int = 2000
    pretrain_steps: int = 2000
    val_every: int = 200
    overlap: float = 0.25
    patience: int | None = None  # validation checks without improvement before stopping
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", …
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "full": UNetConfig(patience=4),
    "quick": UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1, roi=32,
                        steps=600, pretrain_steps=600, val_every=50, patience=4, lr=3e-3),
    "smoke": UNetConfig(channels=(4, 8), strides=(2,), num_res_units=0, roi=16, batch=1,
                        steps=4, pretrain_steps=4, val_every=2, lr=3e-3),
}


def window(hu) -> np.ndarray:
    """HU → [0, 1] over :data:`WINDOW_HU`, float32."""
    lo, hi = WINDOW_HU
    return ((np.clip(np.asarray(hu, dtype=np.float32), lo, hi) - lo) / (hi - lo)
            ).astype(np.float32)


def make_unet(cfg: UNetConfig):
    """The MONAI 3D U-Net (1 channel in, background/heart out), seeded from ``cfg``."""
    from monai.networks.nets import UNet

    torch.manual_seed(cfg.seed)  # on the CPU, so the initial weights match on every device
    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=cfg.channels,
                strides=cfg.strides, num_res_units=cfg.num_res_units
                ).to(resolve_device(cfg.device))


def _patches(x: torch.Tensor, y: torch.Tensor, idx, roi: int, gen: torch.Generator):
    # x, y: (N, 1, Z, Y, X); one random roi³ crop per chosen case (whole volume if smaller)
    xs, ys = [], []
    for i in idx.tolist():
        start = [int(torch.randint(0, max(1, s - roi) + 1, (1,), generator=gen))
                 if s > roi else 0 for s in x.shape[2:]]
        sl = (slice(None),) + tuple(slice(a, a + roi) for a in start)
        xs.append(x[i][sl])
        ys.append(y[i][sl])
    return torch.stack(xs), torch.stack(ys)


def predict(net, images_hu, cfg: UNetConfig) -> np.ndarray:
    """Binary heart masks (N, Z, Y, X) bool by sliding-window inference."""
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(window(images_hu))[:, None]  # (N, 1, Z, Y, X), host memory
    dev = next(net.parameters()).device
    net.eval()
    with torch.no_grad():
        # patches go to the network's device, the stitched logits stay on the host
        logits = sliding_window_inference(x, roi_size=cfg.roi, sw_batch_size=cfg.batch,
                                          predictor=net, overlap=cfg.overlap,
                                          sw_device=dev, device="cpu")
    return logits.argmax(1).numpy().astype(bool)


def train(net, images_hu, labels, steps: int, cfg: UNetConfig, *, val=None, seed: int = 0):
    """Train ``net`` for ``steps`` on (images, binary labels); returns (net, log).

    With ``val = (images_hu, labels)``, the weights with the best mean validation Dice
    (checked every ``cfg.val_every`` steps and at the end) are kept; with
    ``cfg.patience``, training stops after that many checks without a better score
    (``log["stopped_step"]``).
    """
    from monai.losses import DiceCELoss

    x = torch.from_numpy(window(images_hu))[:, None]
    y = torch.from_numpy(np.asarray(labels) != 0).long()[:, None]
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(int(seed))
    log = {"steps": int(steps), "loss": [], "val": []}
    best = (-1.0, None, 0)
    dev = next(net.parameters()).device
    stale = 0  # validation checks since the best
    for step in range(1, steps + 1):
        net.train()
        idx = torch.randint(0, len(x), (min(cfg.batch, len(x)),), generator=gen)
        xb, yb = (t.to(dev) for t in _patches(x, y, idx, cfg.roi, gen))
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        log["loss"].append(float(loss.detach()))
        if val is not None and (step % cfg.val_every == 0 or step == steps):
            score = float(np.mean(dice_scores(predict(net, val[0], cfg), val[1])))
            log["val"].append([step, score])
            if score > best[0]:
                best, stale = (score, copy.deepcopy(net.state_dict()), step), 0
            else:
                stale += 1
            if cfg.patience is not None and stale >= cfg.patience and step < steps:
                log["stopped_step"] = step  # the plateau: the rest would not be selected
                break
    if best[1] is not None:
        net.load_state_dict(best[1])
        log["selected_step"] = best[2]
        log["selected_val_dice"] = best[0]
    return net, log


def pretrain_finetune(cfg: UNetConfig, labelled, *, synthetic=None, val=None, init=None):
    """One row's U-Net: pre-train on ``synthetic`` (when given), fine-tune on ``labelled``.

    Parameters
    ----------
    labelled, synthetic, val : ``(images_hu, labels)`` pairs of (N, Z, Y, X) arrays
    init : a state dict to start from (Direct-FL's federated U-Net) instead of
        :func:`make_unet`'s seeded initialisation

    Returns
    -------
    (net, log) with the pre-training and fine-tuning logs.
    """
    net = make_unet(cfg)
    if init is not None:
        net.load_state_dict(init)
    log = {}
    if synthetic is not None:
        net, log["pretrain"] = train(net, *synthetic, cfg.pretrain_steps, cfg, val=val,
                                     seed=cfg.seed + 1)
    net, log["finetune"] = train(net, *labelled, cfg.steps, cfg, val=val, seed=cfg.seed)
    return net, log
