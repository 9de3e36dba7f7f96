"""The internal label set, shared by every subpackage.

Code sets of other datasets (MM-WHS, ImageCHD, ...) are mapped to these at the io
boundary only (:mod:`fedsim_app.io.labels`).
"""

# Internal label codes: index i in STRUCTURES has label code i + 1; 0 is background.
STRUCTURES: tuple[str, ...] = (
    "lv_blood_pool",
    "lv_myocardium",
    "rv",
    "la",
    "ra",
    "aorta",
    "pulmonary_artery",
)
BACKGROUND = 0
LABEL_OF: dict[str, int] = {name: i + 1 for i, name in enumerate(STRUCTURES)}
NAME_OF: dict[int, str] = {i + 1: name for i, name in enumerate(STRUCTURES)}
DISPLAY_NAME: dict[str, str] = {
    "lv_blood_pool": "LV blood pool",
    "lv_myocardium": "LV myocardium",
    "rv": "RV",
    "la": "LA",
    "ra": "RA",
    "aorta": "Aorta",
    "pulmonary_artery": "Pulmonary artery",
}
