"""The statistical shape model: topology, build (Procrustes + PCA), decode, save/load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.shape.params import (
    N_MODES,
    ParamRanges,
    check_params,
    rigid_from_params,
)
from fedsim_app.shape.procrustes import generalized_procrustes, umeyama

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Topology:
    """Per-structure connectivity shared by every shape of a population.

    Parameters
    ----------
    names : structure names, in vertex order
    vertex_offsets : (S + 1,) structure ``i`` owns vertices ``[off[i], off[i + 1])``
    faces : (F, 3) int64 indices into the stacked vertices; each structure's faces
        index only its own vertices and form a closed surface
    face_offsets : (S + 1,) structure ``i`` owns faces ``[foff[i], foff[i + 1])``
    """

    names: tuple[str, ...]
    vertex_offsets: np.ndarray
    faces: np.ndarray
    face_offsets: np.ndarray

    @classmethod
    def from_meshes(cls, names, faces_per_structure, n_vertices_per_structure) -> Topology:
        """Stack per-structure faces (local indices) into one topology."""
        voff = np.concatenate([[0], np.cumsum(n_vertices_per_structure)]).astype(np.int64)
        foff = np.concatenate([[0], np.cumsum([len(f) for f in faces_per_structure])])
        faces = np.concatenate(
            [np.asarray(f, np.int64) + voff[i] for i, f in enumerate(faces_per_structure)]
        )
        return cls(tuple(names), voff, faces, foff.astype(np.int64))

    @property
    def n_vertices(self) -> int:
        return int(self.vertex_offsets[-1])

    def face_bits(self) -> np.ndarray:
        """(F,) uint8: bit ``1 << i`` of the structure owning each face."""
        counts = np.diff(self.face_offsets)
        return np.repeat((1 << np.arange(len(self.names))).astype(np.uint8), counts)

    def structure(self, vertices: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(vertices, faces)`` of one structure, faces re-indexed from 0."""
        i = self.names.index(name)
        v0, v1 = self.vertex_offsets[i : i + 2]
        f0, f1 = self.face_offsets[i : i + 2]
        return np.asarray(vertices)[v0:v1], self.faces[f0:f1] - v0

    def meshes(self, vertices: np.ndarray) -> dict:
        """``{name: trimesh.Trimesh}`` for stacked vertices (V, 3)."""
        import trimesh

        out = {}
        for name in self.names:
            v, f = self.structure(vertices, name)
            out[name] = trimesh.Trimesh(vertices=v, faces=f, process=False)
        return out


@dataclass(frozen=True)
class ShapeModel:
    """A point-distribution model of the heart: ``x = mean + Φ·b``, then a rigid transform.

    Parameters
    ----------
    topology : per-structure connectivity
    mean : (V, 3) mean shape, world mm, centred at ``center_mm``
    modes : (3V, M) orthonormal PCA modes (columns), ``M >= 14`` (zero-padded if fewer)
    eigenvalues : (M,) variance of each mode (mm²), descending
    center_mm : (3,) world position of the population's mean centroid
    ranges : mapping of the 21 normalised parameters to physical values
    size_mm : centroid size (root of summed squared distances to the centroid) every
        Procrustes-aligned training shape was scaled to
    """

    topology: Topology
    mean: np.ndarray
    modes: np.ndarray
    eigenvalues: np.ndarray
    center_mm: np.ndarray
    ranges: ParamRanges = field(default_factory=ParamRanges)
    size_mm: float = 0.0

    @property
    def n_vertices(self) -> int:
        return self.topology.n_vertices

    def explained_variance_ratio(self) -> np.ndarray:
        """Fraction of the total training variance each mode explains (M,)."""
        total = float(self.eigenvalues.sum())
        return self.eigenvalues / total if total > 0 else np.zeros_like(self.eigenvalues)

    def mode_bounds(self) -> np.ndarray:
        """(14,) ``mode_sd·sqrt(λ_i)``: the clamp of each used mode weight."""
        return self.ranges.mode_sd * np.sqrt(np.maximum(self.eigenvalues[:N_MODES], 0.0))

    def weights_from_params(self, params) -> np.ndarray:
        """Mode weights ``b`` (..., 14) of normalised parameters (..., 21)."""
        return check_params(params)[..., :N_MODES] * self.mode_bounds()

    def shape_from_weights(self, b, clamp: bool = True) -> np.ndarray:
        """``mean + Φ·b`` (V, 3); ``b`` may hold any number of leading modes."""
        b = np.asarray(b, float)
        if clamp:
            k = min(len(b), N_MODES)
            bound = self.mode_bounds()[:k]
            b = np.concatenate([np.clip(b[:k], -bound, bound), b[k:]])
        x = self.mean.reshape(-1) + self.modes[:, : len(b)] @ b
        return x.reshape(-1, 3)

    def decode(self, params) -> np.ndarray:
        """Vertices (V, 3) (or (B, V, 3) for (B, 21)) of normalised parameters."""
        p = check_params(params)
        if p.ndim == 2:
            return np.stack([self.decode(q) for q in p])
        shape = self.shape_from_weights(self.weights_from_params(p), clamp=False)
        return rigid_from_params(p, self.center_mm, self.ranges).apply(shape)

    def encode(self, vertices) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """Project a corresponded shape: ``vertices ≈ s·R·(mean + Φ·b - c) + c + t``.

        The similarity is the one Procrustes alignment applied while building (rotation
        onto the mean, centroid size to ``size_mm``), so a training shape is reproduced
        exactly with all modes. Returns ``(b (M,), s, R, t)``; ``b`` is not clamped.
        """
        x = np.asarray(vertices, float)
        c = np.asarray(self.center_mm, float)
        cx = x.mean(0)
        _, rot, _ = umeyama(self.mean, x, with_scale=False)
        s = float(np.sqrt(((x - cx) ** 2).sum()) / self.size_mm) if self.size_mm else 1.0
        aligned = (x - cx) @ rot / s + c
        b = self.modes.T @ (aligned - self.mean).reshape(-1)
        return b, s, rot, cx - c

    def decode_torch(self, params):
        """Differentiable decode: (B, 21) torch parameters → (B, V, 3) vertices."""
        from fedsim_app.shape.torch_decode import decode_torch

        return decode_torch(self, params)

    def population(self, k: int | None = None, seed: int = 0) -> np.ndarray:
        """``k`` shapes (k, V, 3) whose mean and covariance are exactly the model's.

        The model keeps every mode of its training shapes, so this stands in for them
        where only the model is at hand (an SSM from labels with the atlas added): an SSM
        built from these shapes has the same mean shape, modes and variances. Default
        ``k``: one more than the modes with variance (the training set's size). Each shape
        is ``mean + Σ_i sqrt((k-1)·λ_i)·U_ki·φ_i`` with ``U`` (k, M) orthonormal columns
        orthogonal to the ones vector, drawn from ``seed``: every shape is about one
        standard deviation along each mode, none an extreme.
        """
        eig = np.maximum(self.eigenvalues, 0.0)
        used = int((eig > eig.max() * 1e-12).sum()) if eig.max() > 0 else 0
        k = used + 1 if k is None else int(k)
        if k < used + 1:
            raise ValueError(f"{k} shapes cannot carry {used} modes; use {used + 1} or more")
        rng = np.random.default_rng(seed)
        basis = np.concatenate([np.ones((k, 1)), rng.standard_normal((k, used))], axis=1)
        u = np.linalg.qr(basis)[0][:, 1:]  # (k, used), orthonormal, each column sums to 0
        weights = u * np.sqrt((k - 1) * eig[:used])  # (k, used)
        flat = self.mean.reshape(-1) + weights @ self.modes[:, :used].T
        return flat.reshape(k, -1, 3)

    # ----- persistence -----------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        r = self.ranges
        return {
            "format_version": np.array(FORMAT_VERSION),
            "names": np.array(self.topology.names, dtype="U32"),
            "vertex_offsets": self.topology.vertex_offsets,
            "faces": self.topology.faces,
            "face_offsets": self.topology.face_offsets,
            "mean": self.mean,
            # float32 halves the shipped file; decode error stays below 1e-4 mm
            "modes": self.modes.astype(np.float32),
            "eigenvalues": self.eigenvalues,
            "center_mm": self.center_mm,
            "ranges": np.array([r.mode_sd, r.rotation_rad, r.translation_mm, r.log_scale]),
            "size_mm": np.array(self.size_mm),
        }

    def save(self, path: str | Path) -> Path:
        """Write the model to ``.npz`` (atomically; no pickled objects)."""
        from fedsim_app.io.atomic import write_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = self._arrays()
        return write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays))

    def to_state(self) -> dict:
        """The model as tensors and a name list: what a checkpoint holds (it loads with
        ``torch.load(weights_only=True)``); :meth:`from_state` reads it back."""
        import torch

        arrays = self._arrays()
        names = [str(n) for n in arrays.pop("names")]
        return {"names": names, **{k: torch.from_numpy(np.array(v))
                                   for k, v in arrays.items()}}

    @classmethod
    def from_state(cls, state: dict, source: str = "checkpoint") -> ShapeModel:
        """A model from :meth:`to_state`'s dict (``source`` names it in errors)."""
        try:
            z = {k: (v if k == "names" else np.asarray(v.numpy() if hasattr(v, "numpy")
                                                       else v)) for k, v in state.items()}
            version = int(z["format_version"])
            if version != FORMAT_VERSION:
                raise FedSimError(f"{source}: its shape model has format {version}, this "
                                  f"FedSim reads {FORMAT_VERSION} — retrain it")
            return cls._from_arrays(z)
        except (KeyError, TypeError, ValueError) as exc:
            raise FedSimError(f"{source}: its shape model is incomplete or damaged ({exc}) "
                              "— retrain, or use a checkpoint this FedSim wrote") from None

    @classmethod
    def _from_arrays(cls, z) -> ShapeModel:
        """From :meth:`_arrays`' keys (an ``.npz`` or a checkpoint's state)."""
        topo = Topology(
            tuple(str(n) for n in z["names"]),
            np.asarray(z["vertex_offsets"]).astype(np.int64),
            np.asarray(z["faces"]).astype(np.int64),
            np.asarray(z["face_offsets"]).astype(np.int64),
        )
        return cls(
            topology=topo,
            mean=np.asarray(z["mean"]).astype(float),
            modes=np.asarray(z["modes"]).astype(float),
            eigenvalues=np.asarray(z["eigenvalues"]).astype(float),
            center_mm=np.asarray(z["center_mm"]).astype(float),
            ranges=ParamRanges(*(float(x) for x in np.asarray(z["ranges"]))),
            size_mm=float(np.asarray(z["size_mm"])),
        )

    @classmethod
    def load(cls, path: str | Path) -> ShapeModel:
        """Read a model written by :meth:`save` (``allow_pickle=False``)."""
        path = Path(path)
        if not path.is_file():
            raise FedSimError(
                f"{path}: no such shape model file — build one with `fedsim ssm build`"
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                version = int(z["format_version"])
                if version != FORMAT_VERSION:
                    raise FedSimError(
                        f"{path}: shape model format {version}, this FedSim reads "
                        f"{FORMAT_VERSION} — rebuild it with `fedsim ssm build`"
                    )
                return cls._from_arrays(z)
        except KeyError as exc:
            raise FedSimError(
                f"{path}: not a FedSim shape model (no {exc} array in it) — point --ssm to "
                "a model `fedsim ssm build` wrote, or rebuild it with `fedsim ssm build`"
            ) from exc
        except (ValueError, OSError) as exc:
            # numpy's own text here advises unpickling, which FedSim never does
            raise FedSimError(
                f"{path}: not a FedSim shape model (not a .npz archive of arrays) — point "
                "--ssm to a model `fedsim ssm build` wrote, or rebuild it with `fedsim ssm build`"
            ) from exc


def build_ssm(
    shapes: np.ndarray, topology: Topology, ranges: ParamRanges | None = None
) -> ShapeModel:
    """Build a shape model from corresponded shapes.

    Generalised Procrustes (similarity) alignment, then PCA of the aligned vertex
    sets. Every mode with non-zero variance is kept (``K - 1`` for ``K`` shapes); the
    parameters use the first 14 (zero modes are appended if there are fewer).

    Parameters
    ----------
    shapes : (K, V, 3) corresponded vertex sets (world mm), stacked as ``topology``
    topology : the shared connectivity
    """
    ranges = ParamRanges() if ranges is None else ranges
    x = np.asarray(shapes, float)
    if x.shape[1] != topology.n_vertices:
        raise ValueError(f"shapes have {x.shape[1]} vertices, topology {topology.n_vertices}")
    center = x.mean(axis=1).mean(axis=0)
    aligned, mean = generalized_procrustes(x)
    size = float(np.sqrt((aligned[0] ** 2).sum()))
    k = len(x)
    centred = (aligned - mean).reshape(k, -1)  # (K, 3V)
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    eig = sing**2 / (k - 1)
    keep = eig > eig.max() * 1e-12 if eig.max() > 0 else np.zeros(len(eig), bool)
    modes, eig = vt[keep].T, eig[keep]
    # SVD signs are arbitrary: make each mode's largest component positive (reproducible)
    big = np.abs(modes).argmax(0)
    modes = modes * np.sign(modes[big, np.arange(modes.shape[1])])
    if modes.shape[1] < N_MODES:
        pad = N_MODES - modes.shape[1]
        modes = np.concatenate([modes, np.zeros((modes.shape[0], pad))], axis=1)
        eig = np.concatenate([eig, np.zeros(pad)])
    topology = _outward(topology, mean)
    return ShapeModel(topology, mean + center, modes, eig, center, ranges, size)


def _outward(topology: Topology, vertices: np.ndarray) -> Topology:
    """The topology with every structure wound outward (positive enclosed volume).

    The soft occupancy relies on outward normals; the parity voxelizer does not care.
    """
    faces = topology.faces.copy()
    for i in range(len(topology.names)):
        f0, f1 = topology.face_offsets[i : i + 2]
        tri = vertices[faces[f0:f1]]  # (F_s, 3, 3)
        if np.linalg.det(tri).sum() < 0:
            faces[f0:f1] = faces[f0:f1, ::-1]
    return Topology(topology.names, topology.vertex_offsets, faces, topology.face_offsets)
