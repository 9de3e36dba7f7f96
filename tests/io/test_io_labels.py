"""Label code sets: both directions for every set, JSON mappings, detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsim_app.io import (
    CODE_SETS,
    ExtraLabelWarning,
    LabelCodesError,
    LabelValueError,
    detect_code_set,
    from_internal,
    get_code_set,
    to_internal,
)
from fedsim_app.io.labels_core import LABEL_OF

INTERNAL = np.arange(8, dtype=np.uint8).repeat(3).reshape(2, 3, 4)  # every code, (z, y, x)

# file code of each structure, written out by hand from the issue (not from the module)
EXPECTED = {
    "internal": {"lv_blood_pool": 1, "lv_myocardium": 2, "rv": 3, "la": 4, "ra": 5,
                 "aorta": 6, "pulmonary_artery": 7},
    "mmwhs": {"lv_blood_pool": 500, "lv_myocardium": 205, "rv": 600, "la": 420, "ra": 550,
              "aorta": 820, "pulmonary_artery": 850},
    "mmwhs-consecutive": {"lv_myocardium": 1, "la": 2, "lv_blood_pool": 3, "ra": 4, "rv": 5,
                          "aorta": 6, "pulmonary_artery": 7},
    "imagechd": {"lv_blood_pool": 1, "rv": 2, "la": 3, "ra": 4, "lv_myocardium": 5,
                 "aorta": 6, "pulmonary_artery": 7},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_code_set_both_ways(name):
    file_codes = from_internal(INTERNAL, name)
    for structure, code in EXPECTED[name].items():
        assert (file_codes[LABEL_OF[structure] == INTERNAL] == code).all(), structure
    assert (file_codes[INTERNAL == 0] == 0).all()
    back = to_internal(file_codes, name)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, INTERNAL)


def test_code_sets_cover_the_issue():
    assert set(CODE_SETS) == set(EXPECTED)


def test_mmwhs_421_is_left_atrium_and_writes_back_as_420():
    arr = np.array([0, 420, 421, 500])
    internal = to_internal(arr, "mmwhs")
    np.testing.assert_array_equal(internal, [0, LABEL_OF["la"], LABEL_OF["la"], 1])
    np.testing.assert_array_equal(from_internal(internal, "mmwhs"), [0, 420, 420, 500])
    assert from_internal(internal, "mmwhs").dtype == np.int16  # 850 does not fit uint8


def test_value_outside_code_set_names_file(tmp_path):
    where = tmp_path / "lab.nii.gz"
    with pytest.raises(LabelValueError) as info:
        to_internal(np.array([0, 500, 999]), "mmwhs", path=where)
    assert "999" in str(info.value) and str(where) in str(info.value)
    with pytest.raises(LabelValueError):
        to_internal(np.array([0, 8]), "internal")


def test_imagechd_extra_classes_become_background_with_warning():
    arr = np.array([0, 1, 5, 7, 8, 12])
    with pytest.warns(ExtraLabelWarning, match=r"\[8, 12\]"):
        out = to_internal(arr, "imagechd")
    np.testing.assert_array_equal(out, [0, 1, 2, 7, 0, 0])


@pytest.mark.parametrize("mapping", [
    {"500": "lv_blood_pool", "205": "LV myocardium", "600": 3, "0": "background"},
    {"background": 0, "lv_blood_pool": 500, "lv_myocardium": 205, "rv": 600},
])
def test_json_mapping_file_both_forms(tmp_path, mapping):
    path = tmp_path / "map.json"
    path.write_text(json.dumps(mapping))
    cs = get_code_set(path)
    arr = np.array([0, 500, 205, 600])
    np.testing.assert_array_equal(to_internal(arr, path), [0, 1, 2, 3])
    np.testing.assert_array_equal(from_internal(np.array([0, 1, 2, 3]), cs), arr)
    with pytest.raises(LabelValueError):  # the map lacks the aorta
        from_internal(np.array([6]), cs)


@pytest.mark.parametrize("content", ["{not json", '{"500": "left ventricle"}', "[]",
                                     '{"500": 9}'])
def test_bad_json_mapping_names_file(tmp_path, content):
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(LabelCodesError) as info:
        get_code_set(path)
    assert str(path) in str(info.value)


def test_unknown_code_set_name():
    with pytest.raises(LabelCodesError, match="mmwhs"):
        get_code_set("acdc")


def test_detect_mmwhs():
    assert detect_code_set([0, 205, 500, 421]).name == "mmwhs"


@pytest.mark.parametrize("values", [[0, 1, 2, 3], [1], list(range(8))])
def test_detect_ambiguous_small_codes_asks_for_label_codes(tmp_path, values):
    with pytest.raises(LabelCodesError) as info:
        detect_code_set(values, path=tmp_path)
    text = str(info.value)
    assert "--label-codes" in text and "internal" in text and "imagechd" in text
    assert str(tmp_path) in text


@pytest.mark.parametrize("values", [[0, 3, 9], [0, 500, 1], [0]])
def test_detect_fails_clearly_when_nothing_fits(values):
    with pytest.raises(LabelCodesError, match="--label-codes"):
        detect_code_set(values)


def test_large_array_remap_uses_lookup_table():
    rng = np.random.default_rng(0)
    codes = np.array([0, 205, 420, 500, 550, 600, 820, 850], np.int16)
    arr = codes[rng.integers(0, 8, size=(20, 30, 40))]
    out = to_internal(arr, "mmwhs")
    np.testing.assert_array_equal(from_internal(out, "mmwhs"), arr)
