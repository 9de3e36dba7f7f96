"""The paper's Table 2 ablation: site A, its 4 labels, U-Nets trained on synthetic data only.

Every row renders ``n_synthetic`` volumes in the paper's Fix-Mat setting (the material
map is the fixed atlas table, no G_material) through site A's trained enhancer, then
trains the evaluation's U-Net on them alone (model selection on the fold's real
validation cases) and scores it once on A's test cases. The rows differ in one thing:

- ``rand-shape``: random SSM shapes (:class:`~fedsim_app.shape.ShapeSampler` parameters
  decoded in the SSM site A's G_shape decodes in: its own with the ``cpu`` preset), the
  enhancer's full output;
- ``alpha``: learnt shapes (G_shape of latents drawn from the site's prior); the heart
  of the simulator's CT (the coarse CT upsampled) alpha-blended into the enhancer's
  output with a Gaussian-smoothed heart mask;
- ``poisson``: the same heart pasted by Poisson blending (OpenCV's ``seamlessClone``,
  slice by slice; needs ``opencv-python-headless``);
- ``full``: learnt shapes, the enhancer's full output (the paper's "Ours Fix-Mat").

Case ``i`` of every row draws from the same seed, so rows share their randomness.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedsim_app.device import resolve_device, seeded
from fedsim_app.errors import FedSimError

ROWS = ("rand-shape", "alpha", "poisson", "full")
TITLES = {"rand-shape": "Random SSM shapes + enhancer", "alpha": "Learnt shapes + alpha blend",
          "poisson": "Learnt shapes + Poisson blend",
          "full": "Learnt shapes + full enhancer output (Ours Fix-Mat)"}
SITE = "A"
#: HU ↔ 8-bit for OpenCV's blending: −1024..1526 HU in 10 HU steps
U8_LO, U8_STEP = -1024.0, 10.0
ALPHA_SIGMA = 1.0  # voxels: the soft edge of the alpha mask


def ablation_chain(checkpoint, size: int):
    """``(Generator with G_shape, no G_material, the site enhancer; prior)``."""
    from fedsim_app.export.sample import load_export_model
    from fedsim_app.models.generator import Generator

    model = load_export_model(checkpoint, SITE, size=size)
    g = model.generator
    if g.g_shape is None or g.enhancer is None:
        raise FedSimError(f"{checkpoint}: not a trained site-{SITE} model (no G_shape or "
                          "enhancer) — Table 2 needs one")
    return Generator(g.site, config=g.config, g_shape=g.g_shape, g_material=None,
                     enhancer=g.enhancer, device="cpu"), model.prior


def poisson_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def _to_u8(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.round((hu - U8_LO) / U8_STEP), 0, 255).astype(np.uint8)


def poisson_blend(background_hu: np.ndarray, foreground_hu: np.ndarray, mask: np.ndarray
                  ) -> np.ndarray:
    """Paste ``foreground`` into ``background`` inside ``mask`` by Poisson blending,
    one axial slice at a time (all (Z, Y, X)); slices without mask stay background.

    The mask is dilated by one voxel first: OpenCV's solver fails on regions one or two
    pixels wide (the heart's tips), and a Poisson paste needs a margin around the object.
    """
    import cv2

    out = background_hu.astype(np.float32).copy()
    pad = 4  # seamlessClone refuses a region that touches the border
    mask = np.asarray(mask, bool)
    for z in range(len(mask)):
        m = mask[z].astype(np.uint8) * 255
        if not m.any():
            continue
        src, dst = (cv2.copyMakeBorder(_to_u8(v[z]), pad, pad, pad, pad,
                                       cv2.BORDER_REFLECT) for v in (foreground_hu,
                                                                     background_hu))
        mp = cv2.copyMakeBorder(m, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        # dilated after padding, so a region at the image's edge is 3 pixels wide too
        mp = cv2.dilate(mp, np.ones((3, 3), np.uint8))
        x, y, w, h = cv2.boundingRect(mp)
        # 8-bit 3-channel numpy arrays in, the mask's bounding-box centre keeps it in place
        blended = cv2.seamlessClone(np.dstack([src] * 3), np.dstack([dst] * 3), mp,
                                    (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
        # (H+2p, W+2p, 3) → (H, W); only the mask's pixels take the blend
        res = blended[pad:-pad, pad:-pad, 0].astype(np.float32) * U8_STEP + U8_LO
        out[z] = np.where(mp[pad:-pad, pad:-pad] > 0, res, out[z])
    return out


def alpha_blend(background_hu, foreground_hu, mask, sigma: float = ALPHA_SIGMA) -> np.ndarray:
    """``a·foreground + (1 − a)·background`` with ``a`` the Gaussian-smoothed mask."""
    from scipy.ndimage import gaussian_filter

    a = gaussian_filter(np.asarray(mask, np.float32), sigma)
    return (a * foreground_hu + (1 - a) * background_hu).astype(np.float32)


@torch.no_grad()
def render_row(row: str, gen, prior, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` volumes of ``row``: (n, S, S, S) HU and heart masks (bool)."""
    from fedsim_app.export.sample import case_seed
    from fedsim_app.models.enhance import upsample_coarse
    from fedsim_app.shape import ShapeSampler
    from fedsim_app.train.latents import sample_normal

    images, masks = [], []
    for i in range(n):
        s = case_seed(seed, i)
        if row == "rand-shape":
            params = torch.as_tensor(ShapeSampler().sample(s, 1), dtype=torch.float32)
        else:
            params = gen.g_shape(sample_normal(*prior, 1, seed=s).float())
        with seeded(s, gen.device):  # the enhancer's noise draw
            res = gen(params=params)
        gan = res.ct_hu[0].numpy()
        heart = res.labels[0].numpy() > 0
        if row in ("alpha", "poisson"):
            sim = upsample_coarse(res.coarse_hu, tuple(gan.shape))[0].numpy()
            gan = alpha_blend(gan, sim, heart) if row == "alpha" else \
                poisson_blend(gan, sim, heart)
        images.append(gan.astype(np.float32))
        masks.append(heart)
    return np.stack(images), np.stack(masks)


def run_table2(root, out, cfg, *, checkpoint=None, rows=ROWS, log=print) -> dict:
    """Run (or resume) the ablation on site A's dataset ``root``; ``results["A"][row]``.

    ``checkpoint``: site A's trained model; default the Ours-Full generator trained here
    per fold (as Table 3's, shared with it when ``out`` is the same folder). A row's time
    is its rendering and U-Net (the generator's training is Table 3's ingredient).
    """
    from fedsim_app.evaluate.folds import clock, describe, run_folds, summarise
    from fedsim_app.evaluate.generators import Generators
    from fedsim_app.evaluate.metrics import dice_scores
    from fedsim_app.evaluate.protocols import _prepare_site
    from fedsim_app.evaluate.unet import make_unet, predict, train

    out = Path(out)
    st = _prepare_site(SITE, root, out, cfg)
    gens = Generators({SITE: (st.root, st.split)}, cfg.generator, out / "generators", log=log,
                      device=resolve_device(cfg.unet.device))
    results = {}
    for row in rows:
        if row == "poisson" and not poisson_available():
            why = "OpenCV is not installed (pip install opencv-python-headless)"
            log(f"table2 {TITLES[row]}: not run: {why}")
            results[row] = {"not_run": why}
            continue

        def compute(fold, row=row) -> dict:
            ck = checkpoint or gens.ours(SITE, fold.index)[1]
            rec: dict = {"row": row, "checkpoint": str(ck), "val_ids": list(fold.val),
                         "test_ids": list(st.split.test)}
            with clock(rec):
                gen, prior = ablation_chain(ck, cfg.size)
                x, y = render_row(row, gen, prior, cfg.n_synthetic, cfg.seed)
                net, rec["log"] = train(make_unet(cfg.unet), x, y, cfg.unet.pretrain_steps,
                                        cfg.unet, val=st.stack(fold.val), seed=cfg.seed + 1)
                tx, ty = st.stack(st.split.test)
                rec["test_dice"] = dice_scores(predict(net, tx, cfg.unet), ty).tolist()
            return rec

        results[row] = summarise(run_folds(st.split.folds, out / "table2" / row,
                                           cfg.to_dict(), compute))
        log(f"table2 {describe(TITLES[row], results[row])}")
    return {SITE: results}
