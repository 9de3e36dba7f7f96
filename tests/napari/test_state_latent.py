"""The Qt-free state's latent-mode fields (no display)."""

from __future__ import annotations

import pytest

from fedsim_napari.state import MODES, AppState


def test_latent_fields_fire_once_per_change():
    state = AppState()
    seen = []
    state.events.latent.connect(seen.append)
    state.events.three_sites.connect(seen.append)
    state.events.mode.connect(seen.append)
    state.set_mode("latent")
    state.set_latent([0.5] * 32)
    state.set_latent((0.5,) * 32)  # the same latent: no event, no render
    state.set_three_sites(True)
    state.set_three_sites(True)
    assert seen == ["latent", (0.5,) * 32, True]
    assert "latent" in MODES and state.latent == (0.5,) * 32
    state.set_latent(None)
    assert state.latent is None
    with pytest.raises(ValueError, match="unknown mode"):
        state.set_mode("dream")
