"""The evaluation's picture: Dice per row and site (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsim_app.io.atomic import write_atomic


def dice_plot(path: str | Path, results: dict, *, titles: dict | None = None) -> Path:
    """One panel per site: each row's test-case Dice as dots and their mean as a bar;
    a row that did not run is written "not run" instead of a bar.

    ``results[site][row]`` as :func:`fedsim_app.evaluate.report.summarise` takes it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = titles or {}
    sites = list(results)
    fig, axes = plt.subplots(1, len(sites), figsize=(4.2 * len(sites), 3.6), squeeze=False)
    for ax, site in zip(axes[0], sites, strict=True):
        rows = list(results[site])
        for x, row in enumerate(rows):
            res = results[site][row]
            if "folds" not in res:
                ax.text(x, 0.5, "not run", rotation=90, ha="center", va="center",
                        fontsize=8, color="0.4")
                continue
            cases = np.concatenate([np.asarray(f, float) for f in res["folds"]])
            ax.bar(x, cases.mean(), color="#7fa7d9", width=0.7)
            ax.plot(np.full(cases.shape, x), cases, "k.", markersize=4)
        ax.set_xticks(range(len(rows)), [titles.get(r, r) for r in rows], rotation=45,
                      ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.6, len(rows) - 0.4)  # room for the last "not run"
        ax.set_title(f"site {site}")
        ax.set_ylabel("whole-heart Dice (test)")
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def example_slices(path: str | Path, panels: list) -> Path:
    """The middle axial slice of one volume per row's data, heart outlined.

    ``panels`` is a list of ``(title, image_hu (Z, Y, X), mask (Z, Y, X))``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fedsim_app.evaluate.unet import window

    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    for ax, (title, image, mask) in zip(axes[0], panels, strict=True):
        z = int(np.argmax(np.asarray(mask).sum(axis=(1, 2))))  # the slice with most heart
        ax.imshow(window(image[z]), cmap="gray", vmin=0, vmax=1, origin="lower")
        if np.asarray(mask[z]).any():
            ax.contour(np.asarray(mask[z], float), levels=[0.5], colors="#e8553e",
                       linewidths=0.8, origin="lower")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
