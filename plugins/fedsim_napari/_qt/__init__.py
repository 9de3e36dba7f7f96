"""The plugin's Qt widgets, one file each; nothing outside this package imports Qt
except the workers (:mod:`fedsim_napari.workers`) and the launcher."""
