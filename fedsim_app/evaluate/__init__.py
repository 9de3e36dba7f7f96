"""The paper's segmentation experiments (its Table 3): does synthetic data help a 3D U-Net?

- :mod:`.splits`: label budgets per site and seeded k-fold splits, recorded as JSON
- :mod:`.unet`: the one U-Net protocol every row uses (MONAI ``UNet``, ``DiceCELoss``,
  sliding-window inference, binary whole heart), with a pre-train-then-fine-tune entry
- :mod:`.metrics`: Dice through MONAI's ``DiceMetric``
- :mod:`.protocols`: the rows (Lower/Upper Bound, Fix-Mat, Ours-Pre/Full, Direct-FL,
  Sim-FL); a row whose ingredient is missing is reported "not run: <why>"
- :mod:`.generators`: the generators the synthetic rows sample, trained per fold (one
  single-site run gives Ours-Pre and Ours-Full; an in-process federation gives Sim-FL)
- :mod:`.ingredients`: exports, generators, Direct-FL's U-Net and OOD cases, made once
- :mod:`.ood`: OOD cases (a patient re-rendered by another site's enhancer) and the
  realism check (classifier two-sample test)
- :mod:`.table2`: the paper's Table 2 ablation on site A
- :mod:`.report`: mean ± std over folds per site, a paired bootstrap, JSON and Markdown
"""
