"""The one colour table of the seven structures, used by every picture FedSim makes.

The Explorer's labels layer, meshes and legend, the cohort preview PNG and the sampled
heart pictures all read it, so a structure has the same colour wherever it is shown.
"""

from __future__ import annotations

#: RGB in 0..1 per structure name (internal label order). LV red and RV blue as in most
#: cardiac atlases; the atria and great vessels take hues far from those and each other.
STRUCTURE_COLOURS: dict[str, tuple[float, float, float]] = {
    "lv_blood_pool": (0.90, 0.20, 0.20),
    "lv_myocardium": (0.98, 0.78, 0.25),
    "rv": (0.25, 0.45, 0.95),
    "la": (0.85, 0.35, 0.85),
    "ra": (0.30, 0.80, 0.90),
    "aorta": (0.98, 0.55, 0.15),
    "pulmonary_artery": (0.35, 0.80, 0.35),
}


def hex_colour(name: str) -> str:
    """``"#rrggbb"`` of structure ``name`` (for matplotlib and HTML)."""
    r, g, b = (round(255 * c) for c in STRUCTURE_COLOURS[name])
    return f"#{r:02x}{g:02x}{b:02x}"


def rgb255(name: str) -> tuple[int, int, int]:
    """Structure ``name``'s colour as 0..255 integers."""
    r, g, b = (round(255 * c) for c in STRUCTURE_COLOURS[name])
    return r, g, b
