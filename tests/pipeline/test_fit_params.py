"""params_from_fit: the fit's shape and pose, with the frame offset dropped or folded."""

from __future__ import annotations

import numpy as np

from fedsim_app.pipeline import params_from_fit
from fedsim_app.shape import FitResult, load_atlas_ssm


def test_offset_dropped_or_folded_into_translation():
    ssm = load_atlas_ssm()
    params = np.zeros(21)
    params[0], params[15] = 0.4, -0.3
    offset = np.array([4.0, -2.0, 1.0])
    fit = FitResult(params, offset, ssm.decode(params) + offset, np.zeros((2, 2, 2), np.uint8))
    np.testing.assert_allclose(params_from_fit(ssm, fit), params)
    folded = np.asarray(params_from_fit(ssm, fit, keep_offset=True))
    np.testing.assert_allclose(ssm.decode(folded), fit.vertices, atol=1e-6)
    far = FitResult(params, np.array([150.0, 0, 0]), fit.vertices, fit.labels)
    assert params_from_fit(ssm, far, keep_offset=True)[17] == 1.0  # clamped, never beyond
