"""diffct, imported once with its own deprecation notice silenced.

diffct 2.5's ``__init__`` imports its deprecated ``diffct.differentiable`` module itself,
so merely importing diffct raises a ``DeprecationWarning`` that is about diffct's internals,
not about anything FedSim does. napari's thread workers record every warning raised in
them (filter "always") and show it as a notification over the canvas; the first render of
the Explorer runs in such a worker. Every FedSim module therefore gets diffct from here.
"""

from __future__ import annotations

import warnings

_DEPRECATION = r"Importing from 'diffct\.differentiable' is deprecated"


def quiet_diffct():
    """The ``diffct`` module, imported without its self-inflicted deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION, category=DeprecationWarning)
        import diffct
    return diffct
