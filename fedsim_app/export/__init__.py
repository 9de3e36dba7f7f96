"""Export labelled synthetic datasets from the model.

Every case is written with the one versioned record type of every FedSim output,
:mod:`fedsim_app.io.records` (it lives in ``io`` so the dataset writer below it can use it).

- :mod:`~fedsim_app.export.sample`: the model an export samples (a trained checkpoint, or
  the atlas SSM with Fix-Mat), latents, one case through the chain, novelty
- :mod:`~fedsim_app.export.dataset`: the export loop (nnU-Net v2 raw dataset, resume)

Submodules are imported on use.
"""
