"""Scanner profiles: the shipped sites, TOML validation and round trips."""

import dataclasses
import shutil

import pytest

from fedsim_app.assets import asset_path
from fedsim_app.ctsim.scanner import ScannerProfile, list_scanners, load_scanner
from fedsim_app.errors import FedSimError


def test_three_sites_with_distinct_protocols():
    assert list_scanners() == ["site_a", "site_b", "site_c"]
    a, b, c = (load_scanner(n) for n in list_scanners())
    assert a.kvp == 120 and a.kernel == "standard"
    assert {b.kvp, c.kvp} == {80.0, 100.0}
    assert len({a.kernel, b.kernel, c.kernel}) == 3
    for child in (b, c):
        assert child.photons_per_pixel < a.photons_per_pixel
        assert child.fov_mm < a.fov_mm
        assert (child.hu_slope, child.hu_intercept) != (1.0, 0.0)
    # Effective energies follow kVp.
    assert b.effective_energy_keV < c.effective_energy_keV < a.effective_energy_keV


def test_round_trip_and_frozen():
    a = load_scanner("site_a")
    assert ScannerProfile.from_dict(a.to_dict()) == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.kvp = 80.0
    assert load_scanner(asset_path("scanners", "site_a.toml")) == a


def _copy(tmp_path, text_edit):
    src = asset_path("scanners", "site_a.toml")
    dst = tmp_path / "bad.toml"
    shutil.copy(src, dst)
    dst.write_text(text_edit(dst.read_text()))
    return dst


def test_missing_key_names_file_and_key(tmp_path):
    path = _copy(tmp_path, lambda t: t.replace("sdd_mm = 1040.0\n", ""))
    with pytest.raises(FedSimError, match=r"bad\.toml.*geometry\.sdd_mm"):
        load_scanner(path)


def test_wrong_type_names_key(tmp_path):
    path = _copy(tmp_path, lambda t: t.replace('kernel = "standard"', "kernel = 3"))
    with pytest.raises(FedSimError, match=r"bad\.toml.*recon\.kernel"):
        load_scanner(path)
    path = _copy(tmp_path, lambda t: t.replace('kernel = "standard"', 'kernel = "blurry"'))
    with pytest.raises(FedSimError, match=r"bad\.toml.*kernel"):
        load_scanner(path)


def test_invalid_toml_and_unknown_name(tmp_path):
    path = _copy(tmp_path, lambda t: t + "\n[[[broken\n")
    with pytest.raises(FedSimError, match=r"bad\.toml.*not valid TOML"):
        load_scanner(path)
    with pytest.raises(FedSimError, match="site_a"):
        load_scanner("site_z")
