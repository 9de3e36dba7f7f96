"""FedSim's napari front end: widgets that gather inputs and call the engine.

No maths lives here; everything a widget computes is a call into ``fedsim_app``.
"""

from fedsim_app import __version__

__all__ = ["__version__"]
