"""A trained site's latent space: the normal fitted to its training latents, in coordinates.

The Explorer's "Latent" mode moves a latent z (32 values) along the principal directions of
that normal (the top eight, named by the share of the variance each carries), draws a new
z from it, or jumps to a training volume's learnt latent. Coordinates are in standard
deviations along each direction; moving one leaves z's other components as they are.

Example
-------
>>> import numpy as np
>>> space = LatentSpace.from_prior("A", np.zeros(3), np.diag([4.0, 1.0, 0.25]),
...                                np.eye(3), ("c0", "c1", "c2"), k=2)
>>> space.names()
['Direction 1 (76.2%)', 'Direction 2 (19.0%)']
>>> z = space.with_coord(space.mean, 0, 1.0)   # one standard deviation along direction 1
>>> np.round(space.coords(z), 6).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsim_app.errors import FedSimError

N_DIRECTIONS = 8
COORD_LIMIT = 3.0  # sliders span ±3 standard deviations


@dataclass(frozen=True, eq=False)
class LatentSpace:
    """Principal directions of a site's latent normal, and its training latents.

    Attributes
    ----------
    site : the site key
    mean : (D,) mean of the normal
    cov : (D, D) its covariance
    directions : (k, D) unit eigenvectors, largest variance first
    stds : (k,) standard deviations along them
    shares : (k,) share of the total variance of each direction
    train_latents : (N, D) learnt latents of the training volumes
    train_ids : their case ids
    """

    site: str
    mean: np.ndarray
    cov: np.ndarray
    directions: np.ndarray
    stds: np.ndarray
    shares: np.ndarray
    train_latents: np.ndarray
    train_ids: tuple[str, ...]

    @classmethod
    def from_prior(cls, site: str, mean, cov, train_latents, train_ids,
                   k: int = N_DIRECTIONS) -> LatentSpace:
        mean = np.asarray(mean, np.float64).reshape(-1)
        cov = np.asarray(cov, np.float64)
        if cov.shape != (len(mean), len(mean)):
            raise FedSimError(f"site {site}: latent covariance {cov.shape} does not match a "
                              f"mean of {len(mean)} values")
        values, vectors = np.linalg.eigh((cov + cov.T) / 2)  # ascending
        order = np.argsort(values)[::-1][:k]
        values = np.clip(values[order], 1e-12, None)
        total = float(np.clip(np.trace(cov), 1e-12, None))
        latents = np.asarray(train_latents, np.float64).reshape(-1, len(mean))
        return cls(site, mean, cov, vectors[:, order].T.copy(), np.sqrt(values),
                   values / total, latents, tuple(str(i) for i in train_ids))

    @property
    def dim(self) -> int:
        return len(self.mean)

    def names(self) -> list[str]:
        """Slider names: ``Direction i (share %)``."""
        return [f"Direction {i + 1} ({100 * s:.1f}%)" for i, s in enumerate(self.shares)]

    def coords(self, z) -> np.ndarray:
        """(k,) coordinates of ``z`` in standard deviations along the directions."""
        return self.directions @ (np.asarray(z, np.float64) - self.mean) / self.stds

    def with_coord(self, z, index: int, value: float) -> tuple[float, ...]:
        """``z`` moved along direction ``index`` to coordinate ``value`` (the rest kept)."""
        z = np.asarray(z, np.float64)
        step = (float(value) - self.coords(z)[index]) * self.stds[index]
        return _tuple(z + step * self.directions[index])

    def random(self, seed: int) -> tuple[float, ...]:
        """A draw of the normal, named by ``seed`` (the sampler every export uses)."""
        import torch

        from fedsim_app.train.latents import sample_normal

        z = sample_normal(torch.as_tensor(self.mean), torch.as_tensor(self.cov), 1,
                          seed=int(seed))[0]
        return _tuple(z.numpy())

    def training(self, index: int) -> tuple[float, ...]:
        """The learnt latent of training volume ``index``."""
        if not 0 <= index < len(self.train_latents):
            raise FedSimError(f"site {self.site} has {len(self.train_latents)} training "
                              f"latents; there is no case {index}")
        return _tuple(self.train_latents[index])

    def typical_distance(self) -> float:
        """Median distance of a training latent to its nearest other one: the scale at
        which a sample is 'near a training case' rather than new."""
        t = self.train_latents
        if len(t) < 2:
            return float("nan")
        d = np.linalg.norm(t[:, None] - t[None], axis=-1)  # (N, N)
        np.fill_diagonal(d, np.inf)
        return float(np.median(d.min(1)))


def _tuple(z) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(z, np.float32).reshape(-1))


__all__ = ["COORD_LIMIT", "N_DIRECTIONS", "LatentSpace"]
