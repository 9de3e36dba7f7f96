"""``python -m fedsim_napari``: napari with the FedSim dock open (what ``make run`` starts)."""

from fedsim_napari.launch import main

main()
