"""A trained site model from a checkpoint or a bundle: networks, latents and the chain.

A *bundle* holds several sites' generator parts (no optimiser, no discriminator) in one
file, optionally in float16: the default checkpoint that ``make assets`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fedsim_app.errors import FedSimError
from fedsim_app.io.atomic import atomic_path
from fedsim_app.train.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    checkpoint_shape_model,
    load_checkpoint,
)
from fedsim_app.train.config import TrainConfig, from_dict
from fedsim_app.train.glo import build_nets, is_finished
from fedsim_app.train.latents import Latents
from fedsim_app.train.steps import Nets

BUNDLE_FORMAT = "fedsim-model-bundle"
RUN_MODEL = "model.pt"  # a fedsim federate run's bundle of its sites: RUN/model.pt
BUNDLE_PARTS = ("g_shape", "g_material", "enhancer", "z_lab", "z_unl")


@dataclass
class SiteModel:
    """One site's trained parts and where they came from."""

    site: str
    config: TrainConfig
    nets: Nets
    case_ids: tuple[str, ...]
    n_labelled: int
    prior: dict | None
    source: str
    # the training scans' fields of view (mm): where a frame = "case" model's volumes
    # stand in millimetres (fedsim_app.train.data.scan_grid); empty in older checkpoints
    scan_fov_mm: tuple[float, ...] = ()

    @property
    def device(self) -> torch.device:
        return self.nets.z_lab.codes.device

    def to(self, device) -> SiteModel:
        """Move the networks and latents to ``device``; returns self."""
        self.nets.to(device)
        return self

    def chain(self):
        """The site's chain with these networks, on their device."""
        from fedsim_app.train.session import site_chain

        return site_chain(self.site, self.config, with_nets=self.nets, device=self.device)


def _site_model(entry: dict, source: str) -> SiteModel:
    cfg = from_dict(entry["config"])
    nets = build_nets(cfg, int(entry["n_labelled"]))
    models = entry["models"]
    if "z_unl" in models:
        nets.z_unl = Latents(len(models["z_unl"]["codes"]), cfg.latent_dim)
    for name, module in nets.modules().items():
        if name in models:
            module.load_state_dict({k: v.float() if v.is_floating_point() else v
                                    for k, v in models[name].items()})
    nets.g_shape.ssm = checkpoint_shape_model(entry, source)
    for module in nets.modules().values():
        module.eval()
    return SiteModel(entry["site"], cfg, nets, tuple(entry["case_ids"]),
                     int(entry["n_labelled"]), entry.get("prior"), source,
                     tuple(float(f) for f in entry.get("scan_fov_mm") or ()))


def load_site_models(path: str | Path) -> dict[str, SiteModel]:
    """``{site key: SiteModel}`` of a training checkpoint (one site) or a bundle."""
    path = Path(path)
    data = load_checkpoint(path) if not _is_bundle(path) else _load_bundle(path)
    if data.get("format") == BUNDLE_FORMAT:
        return {k: _site_model(v, f"{path}#{k}") for k, v in data["sites"].items()}
    return {data["site"]: _site_model(data, str(path))}


def _is_bundle(path: Path) -> bool:
    try:
        head = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - load_checkpoint names the problem
        return False
    return isinstance(head, dict) and head.get("format") == BUNDLE_FORMAT


def _load_bundle(path: Path) -> dict:
    data = torch.load(path, map_location="cpu", weights_only=True)
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: bundle format version {data.get('format_version')}, "
                              f"this FedSim reads {FORMAT_VERSION} — rebuild it (make assets)")
    return data


def bundle_entry(state: dict, *, half: bool = True) -> dict:
    """One site's part of a bundle from a finished training ``state`` (a checkpoint's
    dict, or a federated site's composed in :mod:`fedsim_app.federated.bundle`): its
    generator parts (:data:`BUNDLE_PARTS`), optionally in float16, and its record."""
    models = {k: {n: (t.half() if half and t.is_floating_point() else t)
                  for n, t in state["models"][k].items()}
              for k in BUNDLE_PARTS if k in state["models"]}
    entry = {k: state[k] for k in ("config", "site", "case_ids", "n_labelled", "prior",
                                   "seconds")}
    entry["scan_fov_mm"] = list(state.get("scan_fov_mm", []))  # none before 2026-12-04
    if state.get("shape_model") is not None:
        entry["shape_model"] = state["shape_model"]  # full precision: it places vertices
    if "federated" in state:
        entry["federated"] = state["federated"]
    entry["models"] = models
    return entry


def save_bundle(entries: list[dict], out: str | Path) -> Path:
    """Write :func:`bundle_entry` dicts as one bundle file (atomically)."""
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save({"format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION,
                    "sites": {e["site"]: e for e in entries}}, tmp)
    return out


def write_bundle(checkpoints: list[str | Path], out: str | Path, *, half: bool = True
                 ) -> Path:
    """Bundle the generator parts of finished training checkpoints into one file."""
    entries = []
    for ck in checkpoints:
        state = load_checkpoint(ck)
        if not is_finished(state):
            raise FedSimError(f"{ck}: training is not finished (phase {state['phase']}); "
                              "resume it first")
        entries.append(bundle_entry(state, half=half))
    return save_bundle(entries, out)


def initial_bundle(out: str | Path, preset_name: str, sites: tuple[str, ...] = ("A",), *,
                   n_labelled: int = 4) -> Path:
    """A bundle of ``preset_name``'s networks as initialised, untrained: what a trained
    model of that preset costs to run (its sizes), nothing about its quality. For
    benchmarks of presets no model has been trained at here (``paper`` needs a GPU).
    Each site's latent prior is fitted to its initial latents, as training would."""
    from fedsim_app.train.config import preset
    from fedsim_app.train.latents import latent_prior

    entries = []
    for i, key in enumerate(sites):
        cfg = preset(preset_name, seed=i)
        nets = build_nets(cfg, n_labelled)
        entries.append(bundle_entry({
            "config": cfg.to_dict(), "site": key, "n_labelled": n_labelled,
            "case_ids": [f"untrained_{key.lower()}{j:03d}" for j in range(n_labelled)],
            "prior": latent_prior(nets.z_lab.codes), "seconds": {},
            "models": {k: m.state_dict() for k, m in nets.modules().items()}}, half=False))
    return save_bundle(entries, out)


if __name__ == "__main__":  # python -m fedsim_app.train.model_io OUT CK1 [CK2 ...]
    import sys

    print(write_bundle(sys.argv[2:], sys.argv[1]))
