import numpy as np

from fedsim_app.shape import generalized_procrustes, umeyama
from fedsim_app.shape.params import euler_to_matrix
from fedsim_app.shape.synthetic import toy_population


def test_umeyama_recovers_similarity(rng):
    src = rng.normal(size=(50, 3)) * 20
    rot = euler_to_matrix(rng.uniform(-1, 1, 3))
    dst = 1.3 * src @ rot.T + np.array([5.0, -7.0, 2.0])
    s, r, t = umeyama(src, dst)
    assert abs(s - 1.3) < 1e-10
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(t, [5.0, -7.0, 2.0], atol=1e-8)


def test_procrustes_aligns_similar_copies_to_one_shape(rng):
    shapes, _ = toy_population(1, seed=3, subdivisions=1)
    base = shapes[0]
    copies = []
    for _ in range(5):
        rot = euler_to_matrix(rng.uniform(-np.pi, np.pi, 3))
        copies.append(rng.uniform(0.5, 2.0) * base @ rot.T + rng.uniform(-50, 50, 3))
    aligned, mean = generalized_procrustes(np.stack(copies))
    spread = np.abs(aligned - aligned[0]).max()
    assert spread < 1e-8 * np.abs(aligned).max()
    np.testing.assert_allclose(mean, aligned[0], atol=1e-8)
    # the consensus keeps the population's size: centroid size of the copies' mean
    sizes = [np.sqrt(((c - c.mean(0)) ** 2).sum()) for c in copies]
    assert abs(np.sqrt((mean**2).sum()) - np.mean(sizes)) < 1e-6 * np.mean(sizes)


def test_procrustes_result_is_invariant_to_input_pose(rng):
    shapes, _ = toy_population(6, seed=4, subdivisions=1)
    _, mean_a = generalized_procrustes(shapes)
    moved = np.stack([
        rng.uniform(0.7, 1.4) * s @ euler_to_matrix(rng.uniform(-0.3, 0.3, 3)).T
        + rng.uniform(-30, 30, 3)
        for s in shapes
    ])
    aligned_b, mean_b = generalized_procrustes(moved)
    # same consensus up to a global similarity
    s, r, t = umeyama(mean_b, mean_a)
    np.testing.assert_allclose(s * mean_b @ r.T + t, mean_a, atol=1e-6 * np.abs(mean_a).max())
