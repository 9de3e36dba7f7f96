"""The virtual multi-site cohort (the *world*): population × scanner → labelled CT on disk.

Only the cohort uses the procedural anatomy, the torso and the full scanner render; the
model (``fedsim_app.models``) learns from the datasets it writes and never imports it.
"""

from fedsim_app.cohort.case import CaseRecord, render_case, sample_case, scene_classes
from fedsim_app.cohort.contrast import SiteContrast, load_contrast
from fedsim_app.cohort.generate import CohortSummary, generate_cohort, select_sites
from fedsim_app.cohort.preview import write_preview

__all__ = [
    "CaseRecord", "CohortSummary", "SiteContrast", "generate_cohort", "load_contrast",
    "render_case",
    "sample_case", "scene_classes", "select_sites", "write_preview",
]
