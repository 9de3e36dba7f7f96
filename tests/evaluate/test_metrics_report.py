import json

import numpy as np
import pytest

from fedsim_app.evaluate.metrics import dice_scores
from fedsim_app.evaluate.report import (
    fold_stats,
    markdown,
    paired_bootstrap,
    summarise,
    write_report,
)


def test_dice_matches_the_analytic_value():
    pred = np.zeros((3, 8, 8, 8), bool)
    ref = np.zeros((3, 8, 8, 8), bool)
    pred[0, :4, :4, :4] = True  # 64 voxels
    ref[0, :4, :4, :2] = True  # 32 voxels, all inside pred: Dice = 2*32 / (64+32)
    pred[1, :2] = True  # case 1: reference empty, prediction not → 0
    # case 2: both empty → 1
    np.testing.assert_allclose(dice_scores(pred, ref), [2 / 3, 0.0, 1.0])
    labels = ref.astype(np.int64) * 5  # any nonzero code is heart
    np.testing.assert_allclose(dice_scores(pred, labels), [2 / 3, 0.0, 1.0])
    with pytest.raises(ValueError, match="one shape"):
        dice_scores(pred[:, :4], ref)


def test_fold_stats_on_fixed_numbers():
    s = fold_stats([[0.5, 0.7], [0.8, 1.0]])  # fold means 0.6, 0.9
    assert s["mean"] == pytest.approx(0.75)
    assert s["std_folds"] == pytest.approx(0.15)
    assert s["std_cases"] == pytest.approx(np.std([0.5, 0.7, 0.8, 1.0]))
    assert (s["n_folds"], s["n_cases"]) == (2, 4)


def test_paired_bootstrap_on_fixed_numbers():
    const = paired_bootstrap([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])
    assert const["mean"] == pytest.approx(0.1)
    assert const["low"] == pytest.approx(0.1) and const["high"] == pytest.approx(0.1)
    a = np.array([0.9, 0.5, 0.8, 0.6, 0.7])
    b = np.array([0.7, 0.6, 0.6, 0.6, 0.5])
    ci = paired_bootstrap(a, b, n=4000, seed=1)
    d = a - b  # 0.2, -0.1, 0.2, 0, 0.2: mean 0.1
    assert ci["mean"] == pytest.approx(0.1)
    assert d.min() <= ci["low"] < 0.1 < ci["high"] <= d.max()
    assert paired_bootstrap(a, b, n=4000, seed=1) == ci  # seeded
    with pytest.raises(ValueError):
        paired_bootstrap([], [])


def test_report_prints_not_run_rows_without_numbers(tmp_path):
    results = {"A": {"lower": {"folds": [[0.5, 0.7]]},
                     "ours-full": {"folds": [[0.6, 0.9]]},
                     "direct-fl": {"not_run": "no federated U-Net"}}}
    summary = summarise(results)
    assert summary["A"]["rows"]["direct-fl"] == {"not_run": "no federated U-Net"}
    assert summary["A"]["differences"]["ours-full - lower"]["mean"] == pytest.approx(0.15)
    text = markdown(summary, title="T", titles={"lower": "Lower Bound"})
    assert "| Lower Bound | 0.600 ± 0.000 | 0.100 | 1 | 2 |" in text
    assert "| direct-fl | not run: no federated U-Net | – | – | – |" in text
    j, m = write_report(tmp_path, results, title="T", meta={"seed": 0}, notes=["n1"])
    data = json.loads(j.read_text())
    assert data["results"] == results and data["meta"] == {"seed": 0}
    assert "- n1" in m.read_text()
    png = (tmp_path / "dice.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_report_says_when_the_lower_bound_leaves_nothing_to_show():
    summary = summarise({"B": {"lower": {"folds": [[0.96, 0.97]]},
                               "upper": {"folds": [[0.97]], "note": "same cases"}}})
    assert summary["B"]["notes"][0] == "same cases"
    assert "too easy" in summary["B"]["notes"][1]
    assert "Note: same cases" in markdown(summary, title="T")
    assert summarise({"B": {"lower": {"folds": [[0.5]]}}})["B"]["notes"] == []
