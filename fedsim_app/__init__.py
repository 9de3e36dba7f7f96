"""FedSim engine: a physics-driven generative model of labelled cardiac CT.

The engine is importable with no display and no Qt: nothing under ``fedsim_app``
imports napari, qtpy or magicgui (``tests/test_engine_headless.py`` checks it).
"""

from fedsim_app._version import __version__

__all__ = ["__version__"]
