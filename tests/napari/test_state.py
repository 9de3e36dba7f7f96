"""The application state: evented, validated, and free of Qt and napari (no display)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fedsim_app.pipeline import SampleState


def test_state_imports_no_qt_or_napari():
    code = ("import sys; import fedsim_napari.state as s; s.AppState().set_site('B'); "
            "print(sorted(m for m in ('qtpy', 'napari', 'PyQt5', 'magicgui') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_one_event_per_change_and_none_for_the_same_value():
    from fedsim_napari.state import AppState

    state = AppState()
    seen = []
    state.events.sample.connect(seen.append)
    state.set_site("b")
    state.set_site("B")  # unchanged: no event, so no render
    state.set_param(3, 0.5)
    assert [s.site for s in seen] == ["B", "B"]
    assert seen[-1].params[3] == 0.5 and seen[-1].params[2] == 0.0
    # a whole new sample (site, seed and params together) is one event
    state.sample = SampleState.random(7, "C")
    assert len(seen) == 3 and seen[-1].seed == 7


def test_random_and_mean_are_replayable():
    from fedsim_napari.state import AppState

    a, b = AppState(), AppState()
    a.random_sample()
    b.random_sample()
    assert a.sample == b.sample and a.sample.seed == 1
    assert any(v != 0 for v in a.sample.params)
    a.reset_to_mean()
    assert a.sample.params == SampleState().params and a.sample.seed == 1


def test_bad_values_never_land(tmp_path):
    from fedsim_napari.state import AppState

    state = AppState()
    with pytest.raises(ValueError, match="unknown site 'Z'"):
        state.set_site("Z")
    with pytest.raises(ValueError, match="unknown preset"):
        state.set_preset("huge")
    with pytest.raises(ValueError, match="unknown mode"):
        state.set_mode("dream")
    with pytest.raises(ValueError, match="does not exist"):
        state.set_checkpoint(tmp_path / "missing.pt")
    assert state.sample.site == "A" and state.checkpoint is None
    ckpt = tmp_path / "site.pt"
    ckpt.write_bytes(b"x")
    state.set_checkpoint(ckpt)
    assert state.checkpoint == str(ckpt)


def test_params_are_clipped_and_result_compared_by_identity():
    import numpy as np

    from fedsim_napari.state import AppState

    state = AppState()
    state.set_param(0, 3.0)
    assert state.sample.params[0] == 1.0
    results = []
    state.events.result.connect(results.append)
    r = {"ct": np.zeros(3)}
    state.result = r
    state.result = r  # same object: no event, and no array comparison
    state.result = {"ct": np.zeros(3)}
    assert len(results) == 2
