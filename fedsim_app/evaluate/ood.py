"""Out-of-distribution test cases and the realism check of a row's synthetic data.

OOD (the paper's supplementary Table 1): a test patient of site S "goes to" site T: T's
trained enhancer runs on the patient's ground-truth labels and the patient's CT reduced
to T's coarse grid, giving the patient as T's scanner and protocol would show them. The
labels are the patient's own, so every row's U-Net of site S is scored on them. The
volumes stay on S's evaluation grid (the enhancer works slice by slice on any grid).

Realism: the learning issue's classifier two-sample test
(:func:`fedsim_app.train.quality.c2st`): small CNNs learn real vs synthetic axial slices
through the heart and are scored on held-out ones (0.5 = indistinguishable, 1.0 = always
told apart; the mean over the classifiers).
"""

from __future__ import annotations

import numpy as np
import torch

from fedsim_app.device import seeded

HU = 1000.0


def render_ood(images_hu, labels, checkpoint, target: str, size: int, *, seed: int = 0
               ) -> np.ndarray:
    """Patients (N, S, S, S) HU with internal label codes, re-rendered by ``target``'s
    enhancer from ``checkpoint``; returns (N, S, S, S) float32 HU.

    Raises
    ------
    FedSimError
        when the checkpoint has no enhancer (the atlas model): there is no site
        appearance to re-render with.
    """
    from fedsim_app.errors import FedSimError
    from fedsim_app.export.sample import load_export_model
    from fedsim_app.models.coarse_ct import coarse_target

    model = load_export_model(checkpoint, target, size=size)
    gen = model.generator
    if gen.enhancer is None:
        raise FedSimError(f"{checkpoint}: no trained enhancer for site {target} — the OOD "
                          "cases need one")
    coarse = coarse_target(np.asarray(images_hu, np.float32), size=gen.config.coarse_size)
    lab = torch.as_tensor(np.asarray(labels)).long()
    out = []
    with torch.no_grad(), seeded(seed, gen.device):  # the enhancer's noise draw
        for i in range(len(lab)):  # one patient at a time: flat memory at 128³
            ct, _ = gen.enhance(coarse[i:i + 1], lab[i:i + 1])
            out.append(ct[0].numpy().astype(np.float32))
    return np.stack(out)


def _slices(volumes) -> torch.Tensor:
    # (images (N, K, H, W) HU, labels) → heart slices (M, 1, H, W) in hu / 1000, as the
    # quality check reads them
    from fedsim_app.train.quality import heart_slices

    images, labels = volumes
    return heart_slices(torch.as_tensor(np.asarray(images, np.float32)) / HU,
                        torch.as_tensor(np.asarray(labels)))


def realism(real_train, real_held, synthetic, *, seed: int = 0, n_iter: int = 300) -> dict:
    """Classifier two-sample test of a row's synthetic volumes against real ones.

    Parameters
    ----------
    real_train, real_held : ``(images, labels)``, each (N, K, H, W): HU real volumes and
        their labels (training cases / held-out validation cases — never the test cases)
    synthetic : ``(images, labels)``, each (M, K, H, W); the first half trains, the second
        half is held out

    Returns
    -------
    ``{"c2st": held-out accuracy (mean over the classifiers), "c2st_lo", "c2st_hi": the
    lowest and highest, "n_real": ..., "n_synthetic": ...}``
    """
    from fedsim_app.train.quality import c2st

    images, labels = (np.asarray(a) for a in synthetic)
    half = max(1, len(images) // 2)
    held = slice(half, None) if len(images) > half else slice(0, half)
    res = c2st(_slices(real_train), _slices((images[:half], labels[:half])),
               _slices(real_held), _slices((images[held], labels[held])), seed=seed,
               n_iter=n_iter)
    return {"c2st": res.mean, "c2st_lo": res.lo, "c2st_hi": res.hi,
            "n_real": int(len(real_train[0]) + len(real_held[0])),
            "n_synthetic": int(len(images))}
