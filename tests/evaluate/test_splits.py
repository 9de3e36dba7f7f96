import json

import pytest

from fedsim_app.errors import FedSimError
from fedsim_app.evaluate.splits import make_split, read_split, write_split

POOL = [f"case_{i:02d}" for i in range(16)]
TEST = ["case_90", "case_91"]


def test_split_replays_from_the_seed_and_changes_with_it():
    a = make_split("A", POOL, TEST, seed=3, folds=5)
    assert a == make_split("A", list(reversed(POOL)), TEST, seed=3, folds=5)
    assert a != make_split("A", POOL, TEST, seed=4, folds=5)
    # sites draw different permutations from one seed
    b = make_split("B", POOL, TEST, seed=3, folds=5)
    assert [f.val for f in a.folds] != [f.val for f in b.folds]


@pytest.mark.parametrize(("site", "large", "budget"),
                         [("A", False, 4), ("A", True, 8), ("B", False, 6), ("C", True, 12)])
def test_split_respects_the_papers_budgets(site, large, budget):
    split = make_split(site, POOL, TEST, seed=0, folds=5, large_budget=large)
    assert split.budget == split.budget_asked == budget
    vals = []
    for fold in split.folds:
        assert len(fold.labelled) == budget
        parts = [set(fold.labelled), set(fold.extra), set(fold.val)]
        assert sum(map(len, parts)) == len(POOL)  # disjoint, and cover the pool
        assert set().union(*parts) == set(POOL)
        assert not set().union(*parts) & set(TEST)
        vals.extend(fold.val)
    assert sorted(vals) == sorted(POOL)  # every case validates in exactly one fold


def test_budget_is_capped_and_the_cap_recorded():
    split = make_split("C", POOL[:6], TEST, seed=0, folds=1, large_budget=True)
    assert split.budget_asked == 12
    assert split.budget == len(split.folds[0].labelled) == 6 - len(split.folds[0].val)


def test_too_few_cases_and_bad_arguments_are_refused():
    with pytest.raises(FedSimError, match="cannot make 5 folds"):
        make_split("A", POOL[:5], TEST, folds=5)
    with pytest.raises(FedSimError, match="--folds 0"):
        make_split("A", POOL, TEST, folds=0)
    with pytest.raises(FedSimError, match="no paper label budget"):
        make_split("Q", POOL, TEST)
    assert make_split("Q", POOL, TEST, budget=3).budget == 3


def test_split_round_trips_through_json(tmp_path):
    split = make_split("B", POOL, TEST, seed=7, folds=3)
    path = write_split(tmp_path / "split.json", split)
    assert read_split(path) == split
    assert json.loads(path.read_text())["seed"] == 7
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FedSimError, match="bad.json"):
        read_split(tmp_path / "bad.json")
