"""The model's networks (torch modules only): G_shape, G_material, the site enhancer and
its discriminator, and the losses that train them.

Each module builds layer → block → network; none of them knows about datasets, sites or
training schedules (see :mod:`fedsim_app.train`).
"""
