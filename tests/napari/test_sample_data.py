"""File > Open Sample > FedSim: one labelled case per site, in mm, cached."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_sample_opens_with_mm_scale_and_is_cached(make_napari_viewer, monkeypatch, tmp_path):
    import fedsim_napari.sample_data as sd
    from fedsim_app.info import system_info

    monkeypatch.setenv("FEDSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(sd, "SAMPLE_SIZE", 32)
    viewer = make_napari_viewer()
    layers = viewer.open_sample("fedsim", "site_a")
    assert [layer._type_string for layer in layers] == ["image", "labels"]
    image, labels = layers
    assert image.data.shape == labels.data.shape == (32, 32, 32)
    np.testing.assert_allclose(image.scale, labels.scale)
    assert 2.0 < image.scale[0] < 10.0  # mm per voxel of a ~100-250 mm field of view
    assert set(np.unique(labels.data)) >= {0, 1, 2, 3}
    assert (tmp_path / "samples" / "site_a" / "image.nii.gz").is_file()
    assert "site_a" in system_info()["sample_data"]  # the status dock lists it
    again = viewer.open_sample("fedsim", "site_a")  # from the cache
    np.testing.assert_array_equal(again[1].data, labels.data)
