"""Label budgets per site and seeded k-fold splits of a site's training cases.

The site's test split is fixed (the dataset's ``fedsim_split.json``, else the last fifth of
the sorted case ids, as :func:`fedsim_app.train.data.split_cases`); it is touched once per
row. The training cases are permuted once from the seed and cut into ``folds`` chunks:
fold ``k`` validates on chunk ``k`` (model selection only) and, of the remaining cases,
the first ``budget`` are labelled (every row sees them) and the rest are the Upper Bound's
extra labelled cases. Every split is written to JSON and replays from the seed.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fedsim_app.errors import FedSimError
from fedsim_app.train.data import LABEL_BUDGETS

__all__ = ["LABEL_BUDGETS", "Fold", "SiteSplit", "make_split", "read_split", "write_split"]


@dataclass(frozen=True)
class Fold:
    """One fold's case ids: ``labelled`` (the budget), ``extra`` (Upper Bound only), ``val``."""

    index: int
    labelled: tuple[str, ...]
    extra: tuple[str, ...]
    val: tuple[str, ...]


@dataclass(frozen=True)
class SiteSplit:
    """A site's recorded split: the budget asked for and given, the folds and the test ids."""

    site: str
    seed: int
    budget: int
    budget_asked: int
    test: tuple[str, ...]
    folds: tuple[Fold, ...]

    def to_dict(self) -> dict:
        return asdict(self)


def _site_seed(seed: int, site: str) -> int:
    # one stream per site, stable across Python runs (hash() of a str is salted)
    return (int(seed) * 1_000_003 + zlib.crc32(site.encode())) % 2**32


def make_split(site: str, train_ids, test_ids, *, seed: int = 0, folds: int = 5,
               budget: int | None = None, large_budget: bool = False) -> SiteSplit:
    """Split a site's training ids into ``folds`` folds at the site's label budget.

    Parameters
    ----------
    site : site key; A, B and C take the paper's budgets (A 4/8, B and C 6/12)
    train_ids, test_ids : case ids of the site's training and test splits
    budget : labelled cases per fold; default the site's small budget (the large one
        with ``large_budget``). Capped at the cases left after validation, and the cap is
        recorded (``budget`` vs ``budget_asked``).
    """
    ids = sorted(str(i) for i in train_ids)
    if folds < 1:
        raise FedSimError(f"--folds {folds}: use 1 or more folds")
    if budget is None:
        if site not in LABEL_BUDGETS:
            raise FedSimError(f"site {site!r} has no paper label budget — give one "
                              f"(sites with budgets: {', '.join(LABEL_BUDGETS)})")
        budget = LABEL_BUDGETS[site][1 if large_budget else 0]
    if budget < 1:
        raise FedSimError(f"label budget {budget} for site {site}: use 1 or more")
    # one fold still validates on about a fifth of the cases (model selection needs some)
    n_chunks = folds if folds > 1 else min(5, len(ids))
    if len(ids) < max(n_chunks, 1) + 1:
        raise FedSimError(f"site {site}: {len(ids)} training cases cannot make {folds} "
                          f"folds with a validation case each and one labelled case — add "
                          "cases or lower --folds")
    order = np.random.default_rng(_site_seed(seed, site)).permutation(len(ids))
    perm = [ids[i] for i in order]
    chunks = np.array_split(np.arange(len(perm)), n_chunks)
    out = []
    for k in range(folds):
        val = [perm[i] for i in chunks[k]]
        rest = [c for c in perm if c not in set(val)]
        n_lab = min(budget, len(rest))
        out.append(Fold(k, tuple(rest[:n_lab]), tuple(rest[n_lab:]), tuple(val)))
    given = min(budget, min(len(f.labelled) for f in out))
    return SiteSplit(site, int(seed), given, int(budget), tuple(sorted(map(str, test_ids))),
                     tuple(out))


def write_split(path: str | Path, split: SiteSplit) -> Path:
    """Write the split as JSON (atomically)."""
    from fedsim_app.io.atomic import write_json_atomic

    return write_json_atomic(path, split.to_dict())


def read_split(path: str | Path) -> SiteSplit:
    """Read a split written by :func:`write_split`."""
    try:
        d = json.loads(Path(path).read_text())
        folds = tuple(Fold(f["index"], tuple(f["labelled"]), tuple(f["extra"]),
                           tuple(f["val"])) for f in d["folds"])
        return SiteSplit(d["site"], d["seed"], d["budget"], d["budget_asked"],
                         tuple(d["test"]), folds)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FedSimError(f"{path}: cannot read the split ({exc}) — delete it to redo "
                          "the split from the seed") from None
