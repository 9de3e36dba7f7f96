"""``python -m fedsim_napari``: napari with the FedSim dock open (what ``make run`` starts)."""

import sys

from fedsim_napari.launch import main

sys.exit(main())
