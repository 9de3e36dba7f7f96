"""What each Table 3 row needs besides the real volumes, made once and kept on disk.

- the synthetic data of a generator row (an export of its checkpoint, read back);
- the generators themselves when the user passed none (:mod:`.generators`);
- Direct-FL's federated U-Net per fold (``OUT/direct-fl/fold<k>.pt``);
- each site's OOD test cases per fold (``OUT/<site>/ood/fold<k>_<target>.npz``);
- the realism check of a row's synthetic data against the fold's real volumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from fedsim_app.device import resolve_device
from fedsim_app.errors import FedSimError
from fedsim_app.evaluate.generators import Generators
from fedsim_app.io.atomic import atomic_path, write_json_atomic


class Ingredients:
    """Ingredients of one evaluation over ``sites`` (``{site: SiteState}``)."""

    def __init__(self, sites: dict, out, cfg, checkpoints: dict, *, log=print):
        self.sites, self.out, self.cfg, self.log = sites, Path(out), cfg, log
        self.checkpoints = checkpoints
        self.gens = Generators({s: (st.root, st.split) for s, st in sites.items()},
                               cfg.generator, self.out / "generators",
                               fed_rounds=cfg.fed_rounds, log=log,
                               device=resolve_device(cfg.unet.device))
        self._synthetic: tuple = (None, None)  # (key, data): one row's export at a time
        self._ood: dict = {}
        # what making each ingredient took, kept across resumes (a rerun makes nothing)
        # (wall, CPU seconds of this process), so an idle machine's time can be read off
        self._seconds_file = self.out / "ingredient_seconds.json"
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        if self._seconds_file.is_file():
            kept = json.loads(self._seconds_file.read_text())
            self.seconds, self.cpu_seconds = kept.get("wall", {}), kept.get("cpu", {})
        self.notes: list[str] = []

    def _timed(self, name: str, fn, *args):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fn(*args)
        self._record(name, time.perf_counter() - t0, time.process_time() - c0)
        return res

    def _record(self, name: str, seconds: float, cpu: float) -> None:
        # an ingredient is made once and then read back from disk: the making is the
        # longest call (a later reuse must not overwrite it; the quick run's generators
        # were recorded as 0 s when their reuse took over 10 ms)
        if name not in self.seconds or seconds > self.seconds[name]:
            self.seconds[name], self.cpu_seconds[name] = seconds, cpu
            write_json_atomic(self._seconds_file, {"wall": self.seconds,
                                                   "cpu": self.cpu_seconds})

    # -- generators ------------------------------------------------------------------------
    def checkpoint(self, row: str, site: str, k: int) -> tuple:
        """``(checkpoint, source line)`` of a synthetic row at ``site``, fold ``k``."""
        given = self.checkpoints.get((row, site))
        if given is not None:
            if str(given) not in ("default", "atlas") and not Path(given).exists():
                raise FedSimError(f"checkpoint {given} does not exist")
            return given, f"checkpoint passed: {given}"
        if row == "fix-mat":
            return None, "atlas SSM + Fix-Mat (no training)"
        if row in ("ours-pre", "ours-full"):
            pre, full = self._timed(f"generator {site} fold{k}", self.gens.ours, site, k)
            ck = pre if row == "ours-pre" else full
            return ck, f"trained here ({self.cfg.generator.preset} preset): {ck}"
        if row == "sim-fl":
            cks = self._timed(f"federated generator fold{k}", self.gens.federated, k)
            return cks[site], f"federated here ({self.cfg.generator.preset} preset): {cks[site]}"
        raise FedSimError(f"row {row!r} has no generator")

    def for_row(self, row: str, site: str, k: int) -> tuple:
        """``(synthetic (images, labels) or None, initial U-Net state or None, source)``."""
        from fedsim_app.evaluate.protocols import export_synthetic

        if row in ("lower", "upper"):
            return None, None, "real volumes only"
        if row == "direct-fl":
            return None, self.direct_fl(k), f"FedAvg U-Net over {', '.join(self.sites)}"
        ck, source = self.checkpoint(row, site, k)
        fixed = (row, site) in self.checkpoints or row == "fix-mat"  # the same every fold
        folder = self.out / site / row / "synthetic"
        if not fixed:
            folder = folder / f"fold{k}"
        key = (row, site, str(folder))
        if self._synthetic[0] != key:
            data = self._timed(f"export {site} {row} fold{k}", export_synthetic, row, site,
                               folder, self.cfg, ck)
            self._synthetic = (key, data)
        return self._synthetic[1], None, source

    # -- Direct-FL -------------------------------------------------------------------------
    def direct_fl(self, k: int) -> dict:
        """The FedAvg U-Net's weights at fold ``k`` (trained once, then read)."""
        path = self.out / "direct-fl" / f"fold{k}.pt"
        if path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)
        try:
            from fedsim_app.federated.direct_fl import train_direct_fl
        except ImportError:
            from fedsim_app.evaluate.protocols import DIRECT_FL_MISSING

            raise FedSimError(DIRECT_FL_MISSING) from None
        if len(self.sites) < 2:
            raise FedSimError("Direct-FL needs two or more sites (pass --data for each)")
        data = {s: st.stack(st.split.folds[k].labelled) for s, st in self.sites.items()}
        val = {s: st.stack(st.split.folds[k].val) for s, st in self.sites.items()}
        unet = self.cfg.unet
        rounds = max(1, unet.pretrain_steps // self.cfg.fl_local_steps)
        self.log(f"Direct-FL: FedAvg of the U-Net over {', '.join(data)}, fold {k}: "
                 f"{rounds} rounds × {self.cfg.fl_local_steps} local steps")
        record: dict = {}
        t0, c0 = time.perf_counter(), time.process_time()
        net = train_direct_fl(data, unet, rounds=rounds, local_steps=self.cfg.fl_local_steps,
                              seed=self.cfg.seed, val=val, log=record)
        self._record(f"direct-fl fold{k}", time.perf_counter() - t0, time.process_time() - c0)
        state = {n: t.detach().clone() for n, t in net.state_dict().items()}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        write_json_atomic(path.with_suffix(".json"), {**record, "rounds_asked": rounds,
                                                      "seconds": self.seconds[
                                                          f"direct-fl fold{k}"]})
        return state

    # -- OOD and realism ---------------------------------------------------------------------
    def ood(self, site: str, k: int) -> dict:
        """``{target: (images HU, label codes)}``: ``site``'s test patients as seen at each
        other site (empty when OOD is off, or a target has no trained enhancer)."""
        if not self.cfg.ood or len(self.sites) < 2:
            return {}
        if (site, k) in self._ood:
            return self._ood[(site, k)]
        from fedsim_app.evaluate.ood import render_ood

        st = self.sites[site]
        images, labels = st.stack(st.split.test)
        sets = {}
        for target in self.sites:
            if target == site:
                continue
            path = self.out / site / "ood" / f"fold{k}_{target}.npz"
            if path.is_file():
                with np.load(path) as f:
                    sets[target] = (f["images"], f["labels"])
                continue
            try:
                ck, _ = self.checkpoint("ours-full", target, k)
                x = self._timed(f"ood {site}->{target} fold{k}", render_ood, images, labels,
                                ck, target, self.cfg.size)
            except FedSimError as exc:
                note = f"OOD {site}→{target} not made: {' '.join(str(exc).split())}"
                if note not in self.notes:
                    self.notes.append(note)
                    self.log(note)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, images=x, labels=labels)
            sets[target] = (x, labels)
        self._ood[(site, k)] = sets
        return sets

    def realism(self, site: str, fold, synthetic) -> dict:
        """C2ST of a row's synthetic images against the fold's real training (train) and
        validation (held-out) images."""
        from fedsim_app.evaluate.ood import realism

        st = self.sites[site]
        real_train = st.stack(fold.labelled + fold.extra)
        real_held = st.stack(fold.val)
        return realism(real_train, real_held, synthetic, seed=self.cfg.seed)
