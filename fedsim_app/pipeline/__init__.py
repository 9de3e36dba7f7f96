"""The generative pipeline: a parameter state and a site → one labelled, simulated sample.

::

    from fedsim_app.pipeline import FedSimModel, SampleState
    model = FedSimModel("interactive")
    result = model.render(SampleState(site="A"))   # labels, μ map, coarse CT, CT slices

It runs the model's chain (``fedsim_app.models.generator``) with stage caching. Without a
material generator the material map is the atlas material (Fix-Mat); without a site
enhancer the CT is the coarse CT upsampled. Both are named in
``SampleResult.material_source`` / ``ct_source``.
"""

from fedsim_app.pipeline.config import (
    DEFAULT_PRESET,
    PRESETS,
    PipelinePreset,
    SampleState,
    get_preset,
)
from fedsim_app.pipeline.export import export_result
from fedsim_app.pipeline.fit import params_from_fit
from fedsim_app.pipeline.model import FedSimModel, SampleResult

__all__ = [
    "DEFAULT_PRESET", "PRESETS", "FedSimModel", "PipelinePreset", "SampleResult", "SampleState",
    "export_result", "get_preset", "params_from_fit",
]
