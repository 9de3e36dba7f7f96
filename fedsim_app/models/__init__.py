"""The model: the paper's generator, one differentiable torch chain, and its networks.

::

    z ─[G_shape]→ 21 params ─SSM→ labels ─[G_material | Fix-Mat]→ material map 16³
      → μ at the site's effective energy → coarse CT 16³ (the site's scanner, diffct)
      → per-slice [site enhancer] → CT slices

:mod:`fedsim_app.models.generator` runs the chain (``Generator``); each stage is a module
of its own (``shape_stage``, ``material``, ``coarse_ct``, ``enhance``). The networks
(``g_shape``, ``g_material``, ``enhancer``, ``discriminator``) plug into it; the chain
works without them. The model learns from datasets on disk and never reads the world's
internals (``fedsim_app.anatomy`` torso and scene classes, the cohort's noise draws).
"""
