"""The Explorer's text about a shown result: provenance and the status line (Qt-free).

Every string follows the result being shown (its material and CT sources, its grid, how
many slices latent mode has enhanced), never a name given when a layer was created, so
the dock, the layer names (:mod:`fedsim_napari.views`) and napari's status bar agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedsim_napari.views import ct_description


@dataclass(frozen=True)
class Readout:
    """One text and its tooltip (for a QLabel)."""

    text: str
    tooltip: str


def provenance(result) -> Readout:
    """How ``result``'s material map and CT slices were made (HTML)."""
    material = "Fix-Mat atlas" if result.material_source.startswith("Fix-Mat") \
        else "generated"
    ct = ct_description(result)
    if result.latent is not None:
        material = "G_material(z, labels)"
        if result.slices_enhanced is not None and not result.complete \
                and result.ct_source.startswith("site enhancer"):
            ct += " (filling in)"
    return Readout(f"<b>Material</b>: {material}, {result.energy_keV:.1f} keV · "
                   f"<b>CT</b>: {ct}",
                   f"Material map: {result.material_source}.\n"
                   f"CT slices: {result.ct_source}.")


def status(result, ready_ms: float) -> Readout:
    """Grid, site, the time from the change to the views, enhanced slices (latent mode);
    the stage times in the tooltip."""
    g = result.grid
    text = (f"{g.shape[0]}³ × {g.spacing_mm[0]:.2f} mm ({result.preset.name}) · "
            f"site {result.state.site} · ready {ready_ms:.0f} ms after the change")
    if result.latent is not None:
        text += f" · {result.slices_enhanced}/{g.shape[0]} slices enhanced"
    stages = ", ".join(f"{k} {1000 * v:.0f}" for k, v in result.seconds.items())
    return Readout(text, f"stage times (ms): {stages or 'all cached'}")
