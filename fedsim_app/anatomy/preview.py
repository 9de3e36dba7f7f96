"""Pictures of sampled hearts (matplotlib, Agg backend), e.g. for the README."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedsim_app.anatomy.meshes import HeartMeshes
from fedsim_app.io.colours import hex_colour
from fedsim_app.io.labels_core import DISPLAY_NAME, STRUCTURES

COLOURS = {name: hex_colour(name) for name in STRUCTURES}  # FedSim's one colour table
# drawn back to front-ish; the epicardium is translucent so the cavity shows through
_ALPHA = {"lv_myocardium": 0.35, "lv_blood_pool": 0.9}


def render_preview_png(
    path: str | os.PathLike,
    hearts: Sequence[HeartMeshes],
    titles: Sequence[str] | None = None,
    views: Sequence[tuple[float, float]] = ((20.0, -60.0),),
    dpi: int = 110,
) -> Path:
    """Draw hearts as shaded 3D surfaces, one panel per (heart, view), and save a PNG.

    Parameters
    ----------
    path : output file (written atomically).
    hearts : the hearts to draw, one column each.
    titles : one caption per heart (defaults to population and age).
    views : (elevation, azimuth) in degrees of matplotlib's camera, one row each; the
        default looks from the front-left-top (anterior view, patient's left on the right).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    path = Path(path)
    n_cols, n_rows = len(hearts), len(views)
    fig = plt.figure(figsize=(3.4 * n_cols, 3.4 * n_rows + 0.6))
    light = np.array([0.3, 0.6, 0.75]) / np.linalg.norm([0.3, 0.6, 0.75])
    for col, heart in enumerate(hearts):
        lo, hi = heart.bounds_mm()
        mid, half = (lo + hi) / 2, (hi - lo).max() / 2
        for row, (elev, azim) in enumerate(views):
            ax = fig.add_subplot(n_rows, n_cols, row * n_cols + col + 1, projection="3d")
            # one collection for all structures, so matplotlib depth-sorts faces jointly
            tris, rgba = [], []
            for name in heart.names:
                tri = heart.vertices[name][heart.faces[name]]  # (F, 3, 3)
                normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
                normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
                shade = 0.45 + 0.55 * np.clip(normal @ light, 0, 1)
                rgb = np.clip(np.array(to_rgb(COLOURS[name]))[None] * shade[:, None], 0, 1)
                alpha = np.full((len(rgb), 1), _ALPHA.get(name, 1.0))
                tris.append(tri)
                rgba.append(np.concatenate([rgb, alpha], 1))
            ax.add_collection3d(
                Poly3DCollection(
                    np.concatenate(tris), facecolors=np.concatenate(rgba), linewidths=0
                )
            )
            ax.set_xlim(mid[0] - half, mid[0] + half)
            ax.set_ylim(mid[1] - half, mid[1] + half)
            ax.set_zlim(mid[2] - half, mid[2] + half)
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=elev, azim=azim)
            ax.set_xlabel("x (R)", fontsize=7, labelpad=-8)
            ax.set_ylabel("y (A)", fontsize=7, labelpad=-8)
            ax.set_zlabel("z (S)", fontsize=7, labelpad=-8)
            ax.tick_params(labelsize=5, pad=-2)
            if row == 0:
                p = heart.params
                title = (
                    titles[col]
                    if titles is not None
                    else (f"{p.population}, {p.age_years:.1f} y, phase {p.phase:.2f}" if p else "")
                )
                ax.set_title(title, fontsize=8)
    handles = [Patch(color=COLOURS[n], label=DISPLAY_NAME[n]) for n in COLOURS]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.08, wspace=0.02, hspace=0.05)
    from fedsim_app.io.atomic import write_atomic

    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
    return path


def readme_hearts() -> list[HeartMeshes]:
    """The four hearts of the README picture: one per population."""
    from fedsim_app.anatomy.heart import build_heart
    from fedsim_app.anatomy.params import atlas_params, sample_heart_params

    return [
        build_heart(atlas_params(0)),
        build_heart(sample_heart_params("adult", 1)),
        build_heart(sample_heart_params("chd-l", 2)),
        build_heart(sample_heart_params("chd-m", 0)),
    ]


def write_readme_picture(path: str | os.PathLike = "docs/images/hearts.png") -> Path:
    """Regenerate the README picture: one heart per population, anterior, left and
    posterior views."""
    hearts = readme_hearts()
    titles = []
    for h in hearts:
        p = h.params
        vsd = f", VSD {p.vsd_diameter_mm:.0f} mm" if p.vsd_diameter_mm > 0 else ""
        titles.append(f"{p.population}: {p.age_years:.1f} y, phase {p.phase:.2f}{vsd}")
    return render_preview_png(path, hearts, titles=titles, views=[(12, 90), (12, 180), (12, -90)])
