"""Export labelled synthetic datasets from the model, with one record type for every output.

- :mod:`~fedsim_app.export.records`: the one versioned record type and its writer
- :mod:`~fedsim_app.export.sample`: the model an export samples (a trained checkpoint, or
  the atlas SSM with Fix-Mat), latents, one case through the chain, novelty
- :mod:`~fedsim_app.export.dataset`: the export loop (nnU-Net v2 raw dataset, resume)

Submodules are imported on use: ``records`` stays light enough for the lowest layers.
"""
