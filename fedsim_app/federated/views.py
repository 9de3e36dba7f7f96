"""Every N rounds, one latent rendered through each site: the federated model learning.

The latent is drawn once per run from N(0, I) (seeded by the run's seed), saved as
``RUN/views/latent.json`` and read back on resume, so every view of a run shows the same
point of the shared latent space. Each site renders it with the shared G_shape and
G_material (as of that round) and its own scanner, enhancer and G_material's BatchNorm
statistics. ``RUN/views/round_NNNNN.npz`` holds the mid-axial slices (generated labels,
coarse CT upsampled, enhanced; each site one row) and ``round_NNNNN.png`` draws them; round
0 is the untrained model. In-process runs only: on Flower the sites' networks live in
their own SuperNodes' processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.io.atomic import atomic_path

VIEWS_DIR = "views"
LATENT = "latent.json"
COLUMNS = ("generated labels", "coarse CT", "enhanced")
#: the PNG's grey range (HU / 1000): from air, so that an early model's faint body shows
WINDOW = (-1.0, 0.4)


def view_latent(run_dir: str | Path, dim: int, seed: int) -> torch.Tensor:
    """The run's view latent (1, dim): read from ``RUN/views/latent.json``, or drawn from
    N(0, I) with ``seed`` and saved there the first time."""
    path = Path(run_dir) / VIEWS_DIR / LATENT
    if path.is_file():
        try:
            z = json.loads(path.read_text())["latent"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FedSimError(f"{path}: unreadable view latent ({exc}) — delete it (the "
                              "next view draws it again)") from None
        if len(z) != dim:
            raise FedSimError(f"{path}: a latent of {len(z)} values, the run's have {dim} "
                              "— delete it (the next view draws it again)")
        return torch.tensor([z], dtype=torch.float32)
    z = torch.randn(1, dim, generator=torch.Generator().manual_seed(int(seed)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"seed": int(seed), "latent": z[0].tolist()}))
    return z


def due(round_done: int, every: int, total: int) -> bool:
    """Whether the view after ``round_done`` rounds is one to draw (every N, and the
    last)."""
    return every > 0 and (round_done % every == 0 or round_done == total)


def write_round_view(run_dir: str | Path, round_done: int, clients, z: torch.Tensor, *,
                     phase: int | None = None) -> Path:
    """Render ``z`` through every client after ``round_done`` rounds; returns the npz.

    ``clients``: :class:`~fedsim_app.federated.client.FedClient` (each renders with its
    current networks, :meth:`FedClient.view`).
    """
    from fedsim_app.train.runlog import write_sample_grid

    folder = Path(run_dir) / VIEWS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rows = {c.key: c.view(z) for c in clients}  # key -> (labels, coarse, enhanced) (H, W)
    stem = folder / f"round_{round_done:05d}"
    with atomic_path(stem.with_suffix(".npz")) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, round=round_done, phase=-1 if phase is None else phase,
                            sites=np.array(list(rows)), latent=z[0].numpy(),
                            slices=np.stack([np.stack(r) for r in rows.values()]))
    write_sample_grid(stem.with_suffix(".png"),
                      [(f"site {k}", list(r)) for k, r in rows.items()],
                      ["labels", "gray", "gray"], window=WINDOW)
    return stem.with_suffix(".npz")


def list_views(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(rounds done, png)]`` of the run's views, oldest first."""
    folder = Path(run_dir) / VIEWS_DIR
    out = []
    for png in folder.glob("round_*.png") if folder.is_dir() else ():
        try:
            out.append((int(png.stem.split("_")[1]), png))
        except (IndexError, ValueError):
            continue
    return sorted(out)
