"""Fixtures of the io tests: a tiny image and its label map."""

from __future__ import annotations

import pytest
from io_testdata import blob_label, ramp_image

from fedsim_app.io.volume import Volume


@pytest.fixture
def image() -> Volume:
    return ramp_image()


@pytest.fixture
def label(image) -> Volume:
    return blob_label(image)
