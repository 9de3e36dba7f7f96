"""The Explorer's provenance and status text follow the result shown (no display), and
the panels' shared command wiring maps a command's end and phases to buttons."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fedsim_app.models.enhance import NO_ENHANCER
from fedsim_app.pipeline.latent import NOT_IN_CHECKPOINT
from fedsim_napari.readout import provenance, status


def _result(ct_source, latent=None, enhanced=None, complete=True, material="G_material"):
    grid = SimpleNamespace(shape=(64, 64, 64), spacing_mm=np.array([3.25, 3.25, 3.25]))
    return SimpleNamespace(
        material_source=material, ct_source=ct_source, latent=latent,
        slices_enhanced=enhanced, complete=complete, energy_keV=67.4, grid=grid,
        preset=SimpleNamespace(name="interactive"), state=SimpleNamespace(site="B"),
        seconds={"shape": 0.0095, "enhance": 0.014})


def test_provenance_names_how_the_ct_was_made():
    text = provenance(_result(NO_ENHANCER, material="Fix-Mat: atlas"))
    assert "Fix-Mat atlas" in text.text and "coarse CT upsampled, no enhancer" in text.text
    assert NO_ENHANCER in text.tooltip
    text = provenance(_result("site enhancer: Brighter", latent=np.zeros(32), enhanced=3,
                              complete=False))
    assert "G_material(z, labels)" in text.text and "site enhancer (filling in)" in text.text
    assert "no enhancer" not in text.text
    text = provenance(_result(NOT_IN_CHECKPOINT, latent=np.zeros(32), enhanced=0,
                              complete=False))
    assert "no enhancer for this site" in text.text and "filling in" not in text.text


def test_status_line_counts_enhanced_slices_in_latent_mode():
    shape_mode = status(_result(NO_ENHANCER), 12.4)
    assert shape_mode.text == ("64³ × 3.25 mm (interactive) · site B · ready 12 ms after "
                               "the change")
    assert shape_mode.tooltip == "stage times (ms): shape 10, enhance 14"
    latent = status(_result("site enhancer", latent=np.zeros(32), enhanced=7), 80.0)
    assert latent.text.endswith("· 7/64 slices enhanced")


@pytest.mark.parametrize(("rc", "stopped", "expected"), [
    (0, False, "done"), (0, True, "done"), (130, True, "interrupted"),
    (-9, True, "killed"), (130, False, "failed"), (2, False, "failed")])
def test_outcome_of_a_command(rc, stopped, expected):
    from fedsim_napari._qt.command_panel import outcome

    assert outcome(rc, stopped) == expected


@pytest.mark.gui
def test_buttons_follow_the_phase(qtbot):
    from qtpy.QtWidgets import QLineEdit, QPushButton

    from fedsim_napari._qt.command_panel import CommandPanel, form

    panel = CommandPanel()
    qtbot.addWidget(panel)
    row, (go, stop) = panel.button_row({"Go": ("idle", "done"), "Stop": ("running",)})
    layout = form([("Name", QLineEdit()), ("Path", (QLineEdit(), QLineEdit(),
                                                     QPushButton("…")))])
    assert layout.rowCount() == 2 and row.count() == 2
    panel.set_phase("idle")
    assert go.isEnabled() and not stop.isEnabled()
    panel.set_phase("running")
    assert not go.isEnabled() and stop.isEnabled() and panel.phase == "running"
