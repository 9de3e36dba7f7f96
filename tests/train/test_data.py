"""Reading a site's dataset for training and scoring: what a missing label says."""

import pytest


def test_a_test_case_without_label_is_named_as_one(tiny_site, tiny_cfg, monkeypatch):
    from fedsim_app.train import data
    from fedsim_app.train.session import model_frame

    read = data.load_case
    monkeypatch.setattr(data, "load_case", lambda case: (read(case)[0], None))
    grid = model_frame(tiny_cfg)
    with pytest.raises(data.TrainDataError, match=r"sitea_004.*test case has no label"):
        data.load_site_data(tiny_site, grid, n_labelled=0, subset="test")
    with pytest.raises(data.TrainDataError, match=r"sitea_000.*labelled training case"):
        data.load_site_data(tiny_site, grid, n_labelled=1)
