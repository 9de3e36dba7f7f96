"""The one Site record: shipped sites, look-up, and bad sites files."""

import pytest

from fedsim_app.errors import FedSimError
from fedsim_app.sites import Site, get_site, load_sites, site_keys

ENTRY = """
[X]
title = "Site X"
population = "adult"
scanner = "site_b"
dataset_id = 599
dataset_name = "FedSimSiteX"
split = { train = 2, val = 1, test = 1 }
"""


def test_shipped_sites():
    sites = load_sites()
    assert site_keys() == ["A", "B", "C"]
    a = sites["A"]
    assert isinstance(a, Site) and a.scanner.name == "site_a"
    assert a.dataset.folder == "Dataset501_FedSimSiteA"
    assert a.effective_energy_keV == pytest.approx(a.scanner.effective_energy_keV)
    assert get_site("a") is a and get_site(a) is a
    assert a.to_dict()["scanner"] == "site_a"
    assert [a.subset_of(i) for i in (0, 11, 12, 16, 19)] == [
        "train", "train", "val", "test", "test"]


def test_unknown_site_names_the_choices():
    with pytest.raises(FedSimError, match="unknown site 'Q'.*A, B, C"):
        get_site("Q")


def test_site_file_with_own_scanner_and_enhancer(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text(ENTRY + 'enhancer = "ckpt/x.pt"\n')
    x = load_sites(path)["X"]
    assert x.scanner.name == "site_b" and x.enhancer == tmp_path / "ckpt" / "x.pt"
    assert x.n_cases == 4


@pytest.mark.parametrize(("text", "problem"), [
    ("[X\n", "not valid TOML"),
    (ENTRY.replace('population = "adult"\n', ""), r"\[X\].*population"),
    (ENTRY.replace('"site_b"', '"site_q"'), r"\[X\].*unknown scanner 'site_q'"),
    (ENTRY.replace("train = 2", "train = 'two'"), r"\[X\]"),
    ("", "no sites"),
])
def test_bad_sites_file_names_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "sites.toml"
    path.write_text(text)
    with pytest.raises(FedSimError, match=problem) as info:
        load_sites(path)
    assert str(path) in str(info.value)


def test_missing_sites_file(tmp_path):
    with pytest.raises(FedSimError, match="cannot read"):
        load_sites(tmp_path / "nope.toml")
