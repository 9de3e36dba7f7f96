"""Similarity alignment of corresponded point sets: Umeyama and generalised Procrustes."""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True, weights=None):
    """Least-squares similarity ``dst ≈ s·R·src + t`` (Umeyama 1991).

    Parameters
    ----------
    src, dst : (N, 3) corresponded points
    with_scale : estimate ``s`` (otherwise ``s = 1``)
    weights : optional (N,) non-negative weights

    Returns
    -------
    s : float, R : (3, 3) proper rotation, t : (3,)
    """
    src = np.asarray(src, float)
    dst = np.asarray(dst, float)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs  # (3, 3)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0  # a reflection would fit better; keep a proper rotation
    rot = (u * d) @ vt
    var_s = float(w @ (xs**2).sum(1))
    s = float((sig * d).sum() / var_s) if with_scale and var_s > 0 else 1.0
    t = mu_d - s * rot @ mu_s
    return s, rot, t


def generalized_procrustes(
    shapes: np.ndarray, max_iter: int = 100, tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Align corresponded shapes to their common mean by similarity transforms.

    Each shape is centred and scaled to unit centroid size, then rotated onto the
    current mean until the mean stops moving. The consensus is finally expressed in
    the frame and size of the population (rotated onto the average of the centred
    input shapes and scaled to their mean centroid size), so the mean shape stays in
    anatomical orientation and millimetres.

    Parameters
    ----------
    shapes : (K, V, 3) corresponded vertex sets

    Returns
    -------
    aligned : (K, V, 3) aligned shapes, centred at the origin
    mean : (V, 3) their mean
    """
    x = np.asarray(shapes, float)
    if x.ndim != 3 or x.shape[-1] != 3 or len(x) < 2:
        raise ValueError(f"need (K >= 2, V, 3) corresponded shapes, got {x.shape}")
    centred = x - x.mean(axis=1, keepdims=True)
    sizes = np.sqrt((centred**2).sum(axis=(1, 2)))
    unit = centred / sizes[:, None, None]
    mean = unit[0]
    for _ in range(max_iter):
        aligned = np.stack([_rotate_onto(u, mean) for u in unit])
        new_mean = aligned.mean(0)
        new_mean /= np.linalg.norm(new_mean)
        # the mean's own rotation is free; pin it to the previous one to converge
        new_mean = _rotate_onto(new_mean, mean)
        done = np.linalg.norm(new_mean - mean) < tol
        mean = new_mean
        if done:
            break
    aligned = np.stack([_rotate_onto(u, mean) for u in unit])
    # back to the population's frame and size
    _, rot, _ = umeyama(mean, centred.mean(0), with_scale=False)
    scale = float(sizes.mean())
    aligned = scale * aligned @ rot.T
    return aligned, aligned.mean(0)


def _rotate_onto(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``src`` (centred) rotated to best fit ``dst`` (no scale, no translation)."""
    u, _, vt = np.linalg.svd(dst.T @ src)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    return src @ ((u * d) @ vt).T
