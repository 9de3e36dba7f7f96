"""What the Explorer shows in the viewer: four linked 2D layers in napari's grid.

The 2D views (labels, material map 16³, coarse CT 16³, CT slices: the site enhancer's, or
the coarse CT upsampled where the site has none) are napari layers in grid mode,
so they share one slice position and camera; every layer carries its grid's scale and
translate, so positions are mm. The meshes live in a vispy canvas of their own
(:mod:`fedsim_napari._qt.mesh`), since napari's grid shares one 2D/3D display mode.
"""

from __future__ import annotations

import numpy as np

from fedsim_app.ctsim.window import CT_WINDOW_HU
from fedsim_app.io.colours import STRUCTURE_COLOURS, rgb255
from fedsim_app.io.labels_core import LABEL_OF, STRUCTURES

#: RGB 0..1 per structure for the labels layer, meshes and legend: FedSim's one table,
#: which the preview PNGs use too.
STRUCTURE_COLORS = STRUCTURE_COLOURS
LAYER_NAMES = {
    "labels": "Labels (SSM shape)",
    "material": "Material μ/mm 16³",
    "coarse": "Coarse CT 16³ (HU)",
    "ct": "CT slices (HU)",
}
LAYER_SOURCES = {"labels": "labels", "material": "material_mu_per_mm",
                 "coarse": "coarse_ct_hu", "ct": "ct_hu"}


def ct_description(result) -> str:
    """How ``result``'s CT slices were made, in the words every panel uses."""
    from fedsim_app.models.enhance import NO_ENHANCER
    from fedsim_app.pipeline.latent import NOT_IN_CHECKPOINT

    if result.ct_source == NO_ENHANCER:
        return "coarse CT upsampled, no enhancer"
    if result.ct_source == NOT_IN_CHECKPOINT:
        return "no enhancer for this site in the checkpoint: coarse CT upsampled"
    return "site enhancer"


def ct_layer_name(result) -> str:
    """Name of the CT layer: it says whether a site enhancer made the slices."""
    return f"CT slices ({ct_description(result)})"


def label_colormap():
    from napari.utils.colormaps import DirectLabelColormap

    colors = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
    colors.update({LABEL_OF[n]: (*STRUCTURE_COLORS[n], 1.0) for n in STRUCTURES})
    return DirectLabelColormap(color_dict=colors)


def legend_html() -> str:
    """A colour key of the seven structures (for a QLabel)."""
    from fedsim_app.io.labels_core import DISPLAY_NAME

    cells = []
    for n in STRUCTURES:
        r, g, b = rgb255(n)
        cells.append(f"<span style='color:rgb({r},{g},{b})'>■</span>&nbsp;{DISPLAY_NAME[n]}")
    return " &nbsp; ".join(cells)


def arrange(viewer, layers, shape: tuple[int, int], text: str, grid) -> None:
    """Lay ``layers`` out in napari's grid of ``shape`` (filled row by row in the order
    they were added), mm units, a caption, axial slices the radiological way, the slice
    position at the middle of ``grid`` (the label grid)."""
    v = viewer
    for layer in layers:
        layer.units = "mm"
    g = v.canvas.grid if hasattr(v, "canvas") else v.grid  # napari >= 0.9 moved it
    g.enabled = True
    g.shape = shape
    g.spacing = 0.04
    v.dims.axis_labels = ("z (mm)", "y (mm)", "x (mm)")
    scale_bar = v.canvas.overlays.scale_bar if hasattr(v, "canvas") else v.scale_bar
    scale_bar.visible = True  # reads the layers' units: mm
    overlay = v.canvas.overlays.text if hasattr(v, "canvas") else v.text_overlay
    overlay.text = text
    overlay.position = "top_left"
    overlay.font_size = 9
    overlay.color = (0.8, 0.8, 0.8, 1.0)
    overlay.visible = True
    # axial slices the radiological way: anterior up, patient right on screen left
    camera = v.scene.camera if hasattr(v, "scene") else v.camera
    camera.orientation2d = ("up", "left")
    v.dims.set_point(0, float(np.mean(grid.axis_centers()[0])))
    v.reset_view()


class _LayerSet:
    """Layers one view owns in the viewer (``self.layers``: key -> layer)."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.layers: dict = {}

    def alive(self) -> bool:
        return bool(self.layers) and all(
            layer in self.viewer.layers for layer in self.layers.values())

    def clear(self) -> None:
        """Take the layers out of the viewer (another view takes the grid)."""
        for layer in self.layers.values():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers = {}

    def rename(self, key, name: str) -> None:
        """Give the layer ``key`` a new name, and napari's status bar with it: the status
        bar names the layers under the cursor but is recomputed only when the cursor or the
        active layer changes, so a renamed layer (another site, an enhancer loaded) would
        leave it stale."""
        layer = self.layers[key]
        if layer.name != name:
            layer.name = name
            self.viewer.update_status_from_cursor()


class SliceLayers(_LayerSet):
    """The four 2D layers of the Explorer in a napari viewer (created on first result)."""

    def __init__(self, viewer):
        super().__init__(viewer)
        self._grids = None

    def _create(self, result) -> None:
        v, g, cg = self.viewer, result.grid.napari_kwargs(), result.coarse_grid.napari_kwargs()
        mu_max = float(max(result.material_mu_per_mm.max(), 1e-3))
        # layers own copies: updates are written into them in place (see update)
        self.layers["labels"] = v.add_labels(result.labels.copy(), name=LAYER_NAMES["labels"],
                                             colormap=label_colormap(), opacity=0.9, **g)
        self.layers["material"] = v.add_image(
            result.material_mu_per_mm.copy(), name=LAYER_NAMES["material"], colormap="magma",
            contrast_limits=(0.0, mu_max), interpolation2d="nearest", **cg)
        self.layers["coarse"] = v.add_image(
            result.coarse_ct_hu.copy(), name=LAYER_NAMES["coarse"], colormap="gray",
            contrast_limits=CT_WINDOW_HU, interpolation2d="nearest", **cg)
        self.layers["ct"] = v.add_image(result.ct_hu.copy(), name=ct_layer_name(result),
                                        colormap="gray", contrast_limits=CT_WINDOW_HU, **g)
        arrange(v, self.layers.values(), (2, 2), "labels │ material μ 16³\n"
                "coarse CT 16³ │ CT slices", result.grid)

    def update(self, result, only=None) -> None:
        """Put ``result``'s volumes into the layers (created the first time, and again
        when the grids change, e.g. with another preset); ``only``: these layer keys
        (latent mode's fill-in steps change the CT alone)."""
        grids = (result.grid, result.coarse_grid)
        if not self.alive() or grids != self._grids:
            self._grids = grids
            self.clear()
            self._create(result)
            return
        # Same grids: copy into the layers' arrays and refresh the slice. Assigning
        # ``layer.data`` would also recompute dims, extents and the layer list (~15 ms a
        # layer here, on the event loop); thumbnails wait for refresh_thumbnails. The layer
        # list hears every layer event through ``viewer.layers.events`` and repaints its
        # rows for it (a window composition, ~20 ms under software OpenGL): nothing it
        # shows changes here, so that relay is blocked while the slices refresh.
        with self.viewer.layers.events.blocker():
            for key, attr in LAYER_SOURCES.items():
                if only is not None and key not in only:
                    continue
                layer = self.layers[key]
                np.copyto(layer.data, getattr(result, attr))
                layer.refresh(extent=False, highlight=False, thumbnail=False)
        self.rename("ct", ct_layer_name(result))  # another site, with or without an enhancer

    def refresh_thumbnails(self) -> None:
        """Update the layer-list thumbnails (deferred while sliders move)."""
        if self.alive():
            for layer in self.layers.values():
                layer.refresh(data_displayed=False, extent=False, highlight=False)


class SiteStripLayers(_LayerSet):
    """One latent through every site: a column per site (its coarse CT over its CT
    slices) beside a column of the shared labels over the material map, in napari's grid,
    so every panel shares one slice position."""

    def __init__(self, viewer):
        super().__init__(viewer)
        self._key = None

    def update(self, results: dict, only=None) -> None:
        """Show ``{site: SampleResult}`` (one latent; the shape shared); ``only``: these
        layer kinds (``"ct"``, …)."""
        first = next(iter(results.values()))
        key = (tuple(results), first.grid, first.coarse_grid)
        if not self.alive() or key != self._key:
            self._key = key
            self.clear()
            self._create(results)
            return
        with self.viewer.layers.events.blocker():
            for (what, site), layer in self.layers.items():
                if only is not None and what not in only:
                    continue
                r = first if site is None else results[site]
                np.copyto(layer.data, getattr(r, LAYER_SOURCES[what]))
                layer.refresh(extent=False, highlight=False, thumbnail=False)
        for site, r in results.items():
            self.rename(("ct", site), f"Site {site} CT ({ct_description(r)})")

    def _create(self, results: dict) -> None:
        v = self.viewer
        first = next(iter(results.values()))
        g, cg = first.grid.napari_kwargs(), first.coarse_grid.napari_kwargs()
        mu_max = float(max(first.material_mu_per_mm.max(), 1e-3))
        sites = list(results)
        # napari fills its grid row by row in the order the layers were added
        self.layers[("labels", None)] = v.add_labels(
            first.labels.copy(), name="Labels (shared shape)", colormap=label_colormap(),
            opacity=0.9, **g)
        for s in sites:
            self.layers[("coarse", s)] = v.add_image(
                results[s].coarse_ct_hu.copy(), name=f"Site {s} coarse CT 16³ (HU)",
                colormap="gray", contrast_limits=CT_WINDOW_HU, interpolation2d="nearest", **cg)
        self.layers[("material", None)] = v.add_image(
            first.material_mu_per_mm.copy(), name="Material μ/mm 16³ (shared)",
            colormap="magma", contrast_limits=(0.0, mu_max), interpolation2d="nearest", **cg)
        for s in sites:
            self.layers[("ct", s)] = v.add_image(
                results[s].ct_hu.copy(), name=f"Site {s} CT ({ct_description(results[s])})",
                colormap="gray", contrast_limits=CT_WINDOW_HU, **g)
        arrange(v, self.layers.values(), (2, 1 + len(sites)),
                "shared labels │ " + " │ ".join(f"site {s} coarse CT" for s in sites)
                + "\nshared material │ " + " │ ".join(f"site {s} CT" for s in sites),
                first.grid)
