"""Identical sites for the federated tests (site A's record under other keys)."""

import dataclasses


def twin_sites(n=3):
    """Site A's record under ``n`` keys: identical sites (same scanner, same data)."""
    from fedsim_app.sites import get_site

    a = get_site("A")
    return [dataclasses.replace(a, key=f"A{i}") for i in range(1, n + 1)]


def make_twins(tiny_data, cfg, run_dir, n=3):
    from fedsim_app.federated.client import FedClient

    # no system matrix: its first build takes minutes, and the tests compare like with like;
    # the run's seed for every twin's latents, as the single-site trainer draws them
    return [FedClient(s, cfg, tiny_data, 2, run_dir / "sites" / s.key, build_matrix=False,
                      latent_seed=cfg.seed)
            for s in twin_sites(n)]
