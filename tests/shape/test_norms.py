"""Heart measures against the CT norms (`fedsim ssm sample --report`)."""

import pytest

from fedsim_app.shape.norms import NORMS, measure, out_of_range, report_table, summarise

anatomy = pytest.importorskip("fedsim_app.anatomy")


def _topology():
    from fedsim_app.shape.atlas import topology_from_anatomy

    return topology_from_anatomy(anatomy.template_topology())


def test_measures_agree_with_the_heart_record():
    p = anatomy.sample_heart_params("adult", 3)
    heart = anatomy.build_heart(p)
    m = measure(_topology(), heart.stacked_vertices())
    # the PA trunk's ring diameter is the record's (its profile stays within ±15 %)
    assert m["pa_mm"] == pytest.approx(p.pa_diameter_mm, rel=0.15)
    # label volumes lie below the meshes' (precedence gives overlaps to one structure)
    vols = heart.volumes_ml()
    for key, name in (("la_ml", "la"), ("ra_ml", "ra"), ("rv_ml", "rv")):
        assert 0.6 * vols[name] <= m[key] <= vols[name] * 1.02, key
    assert m["lv_ml"] == pytest.approx(vols["lv_blood_pool"], rel=0.05)
    assert m["lv_mass_g"] == pytest.approx(1.05 * heart.myocardium_ml(), rel=0.25)


def test_out_of_range_flags_a_median_outside_its_norm():
    base = {n.key: ((n.lo + n.hi) / 2,) * 3 for n in NORMS}
    extra = {"ao_mm": (30.0,) * 3}
    assert out_of_range({**base, **extra}) == []
    big_lv = {**base, **extra, "lv_ml": (300.0, 250.0, 350.0)}
    assert out_of_range(big_lv) == ["lv_ml"]
    table = report_table({"pop": big_lv})
    assert "OUT" in table and "Kang 2017" in table


def test_cli_sample_report_prints_the_table(capsys):
    from fedsim_app.cli import main

    assert main(["ssm", "sample", "--population", "atlas", "--n", "3", "--report"]) == 0
    out = capsys.readouterr().out
    assert "LV blood pool (mL)" in out and "CT norms" in out and "SSM samples" in out


def test_summarise_percentiles():
    rows = [{"a": float(k)} for k in range(101)]
    assert summarise(rows)["a"] == (50.0, 5.0, 95.0)
