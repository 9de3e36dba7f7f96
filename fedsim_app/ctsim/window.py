"""The one CT display window FedSim shows images in (GUI layers, preview PNGs).

A cardiac CTA window: contrast-enhanced blood (300-500 HU) bright, myocardium (~40 HU)
mid-grey and fat (~-100 HU) dark, all three apart; lung and air clip to black.
"""

#: (low, high) HU of the display window: level 150, width 800.
CT_WINDOW_HU: tuple[float, float] = (-250.0, 550.0)

__all__ = ["CT_WINDOW_HU"]
