"""``LatentModel``: a trained checkpoint's latent z → one result record, slice first.

Every stage comes from the learnt model, through the one chain
(:class:`fedsim_app.models.generator.Generator`, loaded by the export's
:func:`~fedsim_app.export.sample.load_export_model`)::

    shape     z, site            → G_shape(z) → 21 SSM weights → meshes, labels
    material  z, labels          → G_material(z, labels) (16³)
    sensor    z, site, scan site → μ at the scan site's energy → coarse CT (its scanner)
    enhance   … , slices         → the scan site's enhancer on the asked slices only

A render enhances the asked slice (the one on screen) and, with ``fill``, that many more
(nearest to it first); the rest of the CT volume is the upsampled coarse CT until a later
call fills it in (the cache keeps what was enhanced). The enhancer's texture noise is
drawn once per volume from the sample's seed, so a slice is the same whether it was
enhanced first, in a batch or last.

"The same sample through three sites": shape and material come from one site's
generators; each scan site renders them with its own scanner and enhancer (or says that
the checkpoint has none for it).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from fedsim_app.errors import FedSimError
from fedsim_app.pipeline.config import DEFAULT_PRESET, PipelinePreset, SampleState, get_preset
from fedsim_app.pipeline.latent_space import LatentSpace
from fedsim_app.pipeline.model import _LRU, SampleResult, _numpy

NOT_IN_CHECKPOINT = "no enhancer: this checkpoint has none for the site; the coarse CT upsampled"


class LatentModel:
    """Renders latents of a trained checkpoint (one site's run, or a bundle of sites).

    Parameters
    ----------
    checkpoint : a ``fedsim train`` checkpoint or run folder, or a bundle (the default
        checkpoint)
    preset : resolution preset of the renders (the Explorer's)
    threads : torch CPU threads while rendering (see ``FedSimModel``)
    cache_size : volumes kept (each keeps its enhanced slices)
    """

    def __init__(self, checkpoint: str | Path, preset: PipelinePreset | str = DEFAULT_PRESET,
                 *, threads: int = 1, cache_size: int = 6):
        from fedsim_app.export.sample import resolve_checkpoint
        from fedsim_app.train.model_io import load_site_models

        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        path = resolve_checkpoint(checkpoint)
        if path is None or not path.is_file():
            raise FedSimError(f"{checkpoint}: no trained checkpoint there — train a site "
                              "(FedSim training panel or `fedsim train`) or pick its "
                              "checkpoint.pt")
        self.path = path
        self.threads = int(threads)
        self.sites = tuple(load_site_models(path))
        self.stage_counts: Counter = Counter()
        self._models: dict = {}
        self._spaces: dict = {}
        self._scanners: dict = {}
        self._plans: dict = {}  # id(enhancer) -> (enhancer, its inference plan)
        self._shapes = _LRU(cache_size)
        self._volumes = _LRU(cache_size * 3)

    def __repr__(self) -> str:
        return f"LatentModel({str(self.path)!r}, {self.preset.name!r}, sites={self.sites})"

    # -- the checkpoint's parts -------------------------------------------------------
    def site_model(self, site: str):
        """The site's :class:`~fedsim_app.export.sample.ExportModel` at the preset's size."""
        from fedsim_app.export.sample import load_export_model

        key = self._site_key(site)
        if key not in self._models:
            self._models[key] = load_export_model(self.path, key, size=self.preset.label_size)
        return self._models[key]

    def _site_key(self, site: str) -> str:
        key = str(site).strip().upper()
        if key not in self.sites:
            raise FedSimError(f"{self.path} holds a model of site {', '.join(self.sites)}, not "
                              f"site {key}: pick one of those sites, or load that site's "
                              "checkpoint")
        return key

    def space(self, site: str) -> LatentSpace:
        """The site's latent normal in principal directions, with its training latents."""
        key = self._site_key(site)
        if key not in self._spaces:
            m = self.site_model(key)
            mean, cov = m.prior
            self._spaces[key] = LatentSpace.from_prior(key, mean.numpy(), cov.numpy(),
                                                       m.train_latents.numpy(), m.train_ids)
        return self._spaces[key]

    def prepare(self, site: str) -> None:
        """Load the site's networks and its training hearts (for the novelty readout) now,
        so the first render does not pay for them."""
        _ = self.site_model(site).training_reference
        _ = self.space(site)

    def scan_generator(self, site: str):
        """The chain whose scanner and enhancer render for ``site``: the site's own trained
        chain, or (absent from the checkpoint) its scanner without an enhancer."""
        key = str(site).strip().upper()
        if key in self.sites:
            return self.site_model(key).generator
        if key not in self._scanners:
            from fedsim_app.models.generator import ChainConfig, Generator

            self._scanners[key] = Generator(key, config=ChainConfig(
                label_size=self.preset.label_size, coarse_size=self.preset.coarse_size),
                device="cpu")
        return self._scanners[key]

    # -- rendering ----------------------------------------------------------------------
    def render(self, z, site: str, *, seed: int = 0, slice_index: int | None = None,
               fill: int = 0, scan_site: str | None = None,
               novelty: bool = True) -> SampleResult:
        """Render latent ``z`` (32 values) with ``site``'s generators.

        Parameters
        ----------
        z : the latent
        site : whose G_shape and G_material make the shape and material
        seed : names the enhancer's texture noise
        slice_index : the axial slice to enhance first (default: the middle one)
        fill : further slices to enhance in this call (nearest first); the result's
            ``slices_enhanced`` says how many are done
        scan_site : whose scanner and enhancer image it (default ``site``)
        novelty : add the nearest training case (``result.novelty``)
        """
        from fedsim_app.shape.soft import torch_threads

        with torch_threads(self.threads), torch.no_grad():
            return self._render(tuple(float(v) for v in z), self._site_key(site), int(seed),
                                slice_index, int(fill),
                                str(scan_site or site).strip().upper(), novelty)

    def render_sites(self, z, site: str, sites=None, **kwargs) -> dict[str, SampleResult]:
        """``{scan site: result}``: one latent's shape and material (``site``'s generators)
        through every site's scanner and enhancer (default: every known site)."""
        from fedsim_app.sites import load_sites

        keys = tuple(sites) if sites is not None else tuple(load_sites())
        return {k: self.render(z, site, scan_site=k, **kwargs) for k in keys}

    def _shape(self, z: tuple, site: str, seconds: dict) -> dict:
        key = (z, site)
        found = self._shapes.hit(key)
        if found is not None:
            return found
        t0 = time.perf_counter()
        gen = self.site_model(site).generator
        zt = torch.tensor([z], dtype=torch.float32, device=gen.device)  # (1, 32)
        if zt.shape[1] != self.space(site).dim:
            raise FedSimError(f"a latent of {zt.shape[1]} values; site {site}'s model takes "
                              f"{self.space(site).dim}")
        params, _ = gen.shape_params(z=zt)
        vertices, labels, _ = gen.labels(params)
        t1 = time.perf_counter()
        material, material_source = gen.material(labels, z=zt)
        seconds["shape"] = t1 - t0
        seconds["material"] = time.perf_counter() - t1
        self.stage_counts["shape"] += 1
        return self._shapes.put(key, {
            "params": tuple(params[0].cpu().numpy().tolist()), "labels_t": labels,
            "labels": labels[0].cpu().numpy().astype(np.uint8),
            # in millimetres where the model's volumes stand (a model trained with
            # frame = "case": its scans' typical size, not the frame's)
            "meshes": self.site_model(site).written_meshes(vertices[0].cpu().numpy()),
            "material": material,
            "material_source": material_source})

    def _volume(self, z: tuple, site: str, scan_site: str, seed: int, seconds: dict) -> dict:
        from fedsim_app.models.enhance import upsample_coarse

        key = (z, site, scan_site, seed)
        found = self._volumes.hit(key)
        if found is not None:
            return found
        shape = self._shape(z, site, seconds)
        gen = self.scan_generator(scan_site)
        t0 = time.perf_counter()
        mu = gen.mu(shape["material"])  # (1, s, s, s) at the scan site's energy
        coarse = gen.coarse_ct(mu)
        labels = shape["labels_t"]
        k_total, h, w = labels.shape[1:]
        g = torch.Generator().manual_seed(seed)
        seconds["sensor"] = time.perf_counter() - t0
        self.stage_counts["sensor"] += 1
        return self._volumes.put(key, {
            "mu": _numpy(mu[0]), "coarse_t": coarse, "coarse": _numpy(coarse[0]),
            # until enhanced, a slice shows what the chain shows without an enhancer
            "ct": _numpy(upsample_coarse(coarse, (k_total, h, w))[0]),
            "done": np.zeros(k_total, bool),
            "noise": torch.randn((k_total, 1, h, w), generator=g),  # (K, 1, H, W)
        })

    def _runner(self, enhancer):
        """The enhancer's fused inference plan (the chain's, built once), else itself."""
        from fedsim_app.models.enhance_infer import plan_enhancer

        key = id(enhancer)
        if key not in self._plans:
            self._plans[key] = (enhancer, plan_enhancer(enhancer) or enhancer)
        return self._plans[key][1]

    def _enhance(self, vol: dict, labels: torch.Tensor, gen, slices: list[int]) -> None:
        """Enhance ``slices`` of ``vol`` in place (one enhancer call)."""
        from fedsim_app.models.enhance import (
            HU_SCALE,
            enhancer_conditioning,
            level_inputs,
            takes_noise,
        )

        if not slices or gen.enhancer is None:
            vol["done"][slices] = True
            return
        ks = torch.as_tensor(slices)
        cond = enhancer_conditioning(vol["coarse_t"], labels, ks)  # rows: one per slice
        run = self._runner(gen.enhancer)
        # the volume's noise, not a fresh draw: a slice is the same in any order
        kw = {"noise": vol["noise"][ks]} if takes_noise(gen.enhancer) else {}
        kw.update(level_inputs(gen.enhancer, vol["coarse_t"], labels, len(slices)))
        y = run(*cond, **kw)
        vol["ct"][slices] = y[:, 0].cpu().numpy() * HU_SCALE  # (n, H, W)
        vol["done"][slices] = True
        self.stage_counts["enhanced_slices"] += len(slices)

    def _render(self, z, site, seed, slice_index, fill, scan_site, novelty) -> SampleResult:
        from fedsim_app.models.enhance import enhancer_source

        seconds: dict = {}
        shape = self._shape(z, site, seconds)
        vol = self._volume(z, site, scan_site, seed, seconds)
        gen = self.scan_generator(scan_site)
        k_total = len(vol["done"])
        k = k_total // 2 if slice_index is None else int(np.clip(slice_index, 0, k_total - 1))
        todo = [] if vol["done"][k] else [k]
        if fill > 0:
            rest = [i for i in np.argsort(np.abs(np.arange(k_total) - k), kind="stable")
                    if not vol["done"][i] and i != k]
            todo += [int(i) for i in rest[:fill]]
        t0 = time.perf_counter()
        self._enhance(vol, shape["labels_t"], gen, sorted(todo))
        if todo:
            seconds["enhance"] = time.perf_counter() - t0
        done = int(vol["done"].sum())
        if scan_site not in self.sites:
            source = NOT_IN_CHECKPOINT
        else:
            source = enhancer_source(gen.enhancer, gen.enhancer_checkpoint)
        m = self.site_model(site)  # whose shape: its volumes' size in millimetres
        return SampleResult(
            state=SampleState(shape["params"], seed, scan_site), preset=self.preset,
            site=gen.site.to_dict(), grid=m.written_grid, coarse_grid=m.written_coarse_grid,
            meshes=shape["meshes"], labels=shape["labels"], material_mu_per_mm=vol["mu"],
            coarse_ct_hu=vol["coarse"], ct_hu=vol["ct"].copy(),
            material_source=shape["material_source"], ct_source=source,
            energy_keV=gen.site.effective_energy_keV, seconds=seconds, latent=z,
            slices_enhanced=done, novelty=self._novelty(z, site, seed, shape)
            if novelty else None)

    def _novelty(self, z, site, seed, shape) -> dict:
        """The nearest training case (export's novelty measure) and the space's scale."""
        from fedsim_app.export.sample import CaseDraw

        if "novelty" not in shape:
            m = self.site_model(site)
            found = m.novelty(CaseDraw(0, seed, z, None), shape["labels"])
            ids = list(m.train_ids)
            found["nearest_index"] = ids.index(found["nearest_by_latent"])
            found["typical_distance"] = self.space(site).typical_distance()
            shape["novelty"] = found
        return shape["novelty"]


__all__ = ["NOT_IN_CHECKPOINT", "LatentModel"]
