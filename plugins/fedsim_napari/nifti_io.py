"""NIfTI reader and writers for napari (spacing and orientation honoured via the engine)."""
