"""Training checkpoints: atomic, versioned, loaded without executing code.

A checkpoint is a plain dict of tensors, numbers and strings saved with ``torch.save`` and
read back with ``torch.load(weights_only=True)``. It holds every module's and optimiser's
state, the training position (phase, step) and the RNG state, so a resumed run continues
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from fedsim_app.errors import FedSimError
from fedsim_app.io.atomic import atomic_path

FORMAT = "fedsim-train-checkpoint"
FORMAT_VERSION = 3  # 3: the enhancer's label-wise skip; 2: G_material reads the labels
# (issue 9); older ones are refused


class CheckpointError(FedSimError):
    """A checkpoint file that cannot be used (corrupt, foreign or of another version)."""


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` (plus the format tag and version) atomically to ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, tmp)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    CheckpointError
        naming the file when it is missing, corrupt, not a FedSim checkpoint, or of
        another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there — check the path, or start "
                              "without --resume")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as exc:
        msg = " ".join(str(exc).split())[:200]
        if "weights only load failed" in msg.lower():
            raise CheckpointError(f"{path}: holds objects other than tensors and plain values; "
                                  "refused without running them — use a checkpoint written by "
                                  "fedsim train") from None
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({msg}) — "
                              "delete it and resume from an earlier one, or retrain") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a FedSim training checkpoint")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version}, this FedSim reads version "
            f"{FORMAT_VERSION} — retrain with this version, or load it with the FedSim "
            "that wrote it")
    return data


def rng_state(generator: torch.Generator) -> dict:
    """The RNG state a checkpoint stores: the training generator and torch's global one."""
    return {"train": generator.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["train"])
    torch.set_rng_state(state["torch"])


def shape_model_state(g_shape) -> dict | None:
    """What a checkpoint keeps of the SSM a G_shape decodes in (None: the atlas SSM)."""
    ssm = getattr(g_shape, "ssm", None)
    return None if ssm is None else ssm.to_state()


def checkpoint_shape_model(state: dict, source):
    """The base SSM a checkpoint's G_shape was trained on (None: the atlas SSM); a config
    asking for an SSM from labels that the checkpoint does not hold is refused."""
    from fedsim_app.shape.model import ShapeModel

    saved = state.get("shape_model")
    kind = state.get("config", {}).get("shape_model", "atlas")
    if saved is None:
        if kind != "atlas":
            raise CheckpointError(f"{source}: trained with shape_model = {kind!r} but holds no "
                                  "shape model — the file is incomplete; retrain it")
        return None
    return ShapeModel.from_state(saved, str(source))

