"""The one record type: header, round trip, bad files named, every writer uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsim_app.io.records import FORMAT_VERSION, Record, RecordError, read_record, write_record


def test_round_trip_and_flat_header(tmp_path):
    rec = Record("shape-sample", {"seed": 3, "params": [0.5] * 21})
    path = write_record(tmp_path / "r.json", rec)
    data = json.loads(path.read_text())
    assert data["format"] == "fedsim-record" and data["kind"] == "shape-sample"
    assert data["format_version"] == FORMAT_VERSION and data["seed"] == 3
    assert read_record(path) == rec


def test_unserialisable_record_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        write_record(tmp_path / "r.json", Record("export-case", {"x": float("nan")}))
    assert not list(tmp_path.iterdir())


def test_header_clash_refused():
    with pytest.raises(ValueError, match="clash"):
        Record("export-case", {"kind": "other"})


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ('{"seed": 1}', "not a FedSim record"),
    ('{"format": "fedsim-record", "format_version": 99, "kind": "x"}', "update FedSim"),
])
def test_bad_record_files_named(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RecordError, match=words) as info:
        read_record(path)
    assert str(path) in str(info.value)


def test_missing_record_named(tmp_path):
    with pytest.raises(RecordError, match="cannot read"):
        read_record(tmp_path / "gone.json")


def test_dataset_writer_case_files_are_records(tmp_path):
    from fedsim_app.io import DatasetWriter, Volume
    from fedsim_app.io.grid import Grid

    grid = Grid.centered(8, (2.0, 2.0, 2.0))
    w = DatasetWriter(tmp_path, "T", image_hu_int16=True)
    image = Volume(np.full((8, 8, 8), 40.6, np.float32), grid, kind="image")
    label = Volume(np.ones((8, 8, 8), np.uint8), grid, kind="label")
    rec = read_record(w.add_case("c0", image, label, record={"seed": 1}, kind="cohort-case"))
    assert rec.kind == "cohort-case" and rec["record"] == {"seed": 1}
    import nibabel as nib

    img = nib.load(w.image_path("c0"))
    assert img.get_data_dtype() == np.int16 and np.asarray(img.dataobj).max() == 41


def test_io_imports_nothing_above_it():
    # io is the lowest engine layer (DESIGN.md): the record type lives here so that the
    # dataset writer, the cohort and the export all reach it without an upward import
    import ast
    from pathlib import Path

    import fedsim_app.io

    allowed = ("fedsim_app.io", "fedsim_app.errors", "fedsim_app._version")
    upward = []
    for path in sorted(Path(fedsim_app.io.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.module != "fedsim_app" else \
                    [f"fedsim_app.{a.name}" for a in node.names if a.name != "__version__"]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            upward += [f"{path.name}: {n}" for n in names
                       if n.startswith("fedsim_app") and not n.startswith(allowed)]
    assert not upward, upward
