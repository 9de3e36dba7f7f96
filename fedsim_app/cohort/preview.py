"""A PNG that shows how the sites' scanners differ: one mid-axial slice per site."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedsim_app.ctsim.window import CT_WINDOW_HU
from fedsim_app.errors import FedSimError
from fedsim_app.io.colours import hex_colour
from fedsim_app.io.labels_core import DISPLAY_NAME, STRUCTURES

COLOURS = tuple(hex_colour(name) for name in STRUCTURES)  # FedSim's one colour table
PANEL_W_IN, PANEL_H_IN = 4.2, 4.6
LEGEND_ENTRY_W_IN = 1.45  # room for the longest name ("Pulmonary artery") at 8 pt
LEGEND_ROW_H_IN = 0.22


def find_site_datasets(root: str | Path) -> list[Path]:
    """The nnU-Net dataset folders of a cohort (those holding FedSim case records)."""
    root = Path(root)
    found = sorted(p.parent.parent for p in root.glob("*/fedsim/*.json"))
    found = list(dict.fromkeys(found))
    if not found and (root / "fedsim").is_dir():
        found = [root]
    if not found:
        raise FedSimError(f"{root}: no FedSim cohort datasets found — make one with "
                          "`fedsim cohort --out DIR` first")
    return found


def write_preview(root: str | Path, out_png: str | Path | None = None) -> Path:
    """Draw one mid-axial slice per site (first case) with label contours → PNG path."""
    import matplotlib.pyplot as plt

    from fedsim_app.io.atomic import atomic_path

    fig = preview_figure(find_site_datasets(root))
    out_png = Path(out_png) if out_png else Path(root) / "preview.png"
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out_png


def preview_figure(datasets: list[Path]):
    """The preview as a matplotlib figure: a panel per dataset, the legend below them in
    as many rows as the figure's width needs (one site: four rows of two)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from fedsim_app.io import get_code_set, read_nifti, to_internal

    width = PANEL_W_IN * len(datasets)
    ncol = max(1, min(len(STRUCTURES), int(width // LEGEND_ENTRY_W_IN)))
    rows = -(-len(STRUCTURES) // ncol)
    legend_h = LEGEND_ROW_H_IN * rows + 0.1
    fig, axes = plt.subplots(1, len(datasets), figsize=(width, PANEL_H_IN + legend_h),
                             squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        meta = json.loads(sorted((ds / "fedsim").glob("*.json"))[0].read_text())
        image = read_nifti(ds / meta["image"]).array
        raw = read_nifti(ds / meta["label"], kind="label").array
        label = to_internal(raw, get_code_set(meta["label_codes"]))
        zs = np.nonzero(label.any(axis=(1, 2)))[0]
        k = int((zs.min() + zs.max()) // 2) if len(zs) else label.shape[0] // 2
        spacing = meta["spacing_mm_zyx"]
        ny, nx = label.shape[1:]
        extent = (0, nx * spacing[2], 0, ny * spacing[1])
        # one frame for image and contours: rows (y) run posterior → anterior, drawn
        # upward; the x axis is inverted so the patient's right is on the viewer's left
        lo, hi = CT_WINDOW_HU
        ax.imshow(image[k], cmap="gray", vmin=lo, vmax=hi, origin="lower",
                  extent=extent, interpolation="nearest")
        xs = (np.arange(nx) + 0.5) * spacing[2]
        ys = (np.arange(ny) + 0.5) * spacing[1]
        for code, colour in enumerate(COLOURS, start=1):
            mask = (label[k] == code).astype(float)
            if mask.any():
                ax.contour(xs, ys, mask, levels=[0.5], colors=[colour], linewidths=0.9)
        ax.invert_xaxis()
        ax.set_xlabel("mm (patient right on the left)")
        ax.set_ylabel("mm (anterior up)")
        rec = meta["record"]
        ax.set_title(f"site {rec.get('site', '?')} · {rec.get('scanner', '')} · "
                     f"{spacing[2]:.2f} mm\nage {rec['heart'].get('age_years', 0):.1f} y, "
                     f"{rec.get('fidelity', '')} render", fontsize=9)
    handles = [Line2D([0], [0], color=c, lw=2) for c in COLOURS]
    fig.legend(handles, [DISPLAY_NAME[n] for n in STRUCTURES], loc="lower center",
               ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_h / (PANEL_H_IN + legend_h), 1, 1))
    return fig
