"""The evaluation's report: a table per site (mean ± std over folds), JSON and Markdown.

A row's result is either per-fold test Dice lists or a ``not_run`` reason; a row that
did not run is printed "not run: <why>", never given a number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsim_app.io.atomic import write_json_atomic, write_text_atomic

#: a Lower Bound at or above this Dice leaves nothing to show on a site
CEILING = 0.95
#: the differences that matter, (minuend, subtrahend)
DIFFERENCES = (("ours-full", "lower"), ("fix-mat", "lower"), ("sim-fl", "direct-fl"))


def fold_stats(folds: list[list[float]]) -> dict:
    """Mean and std over folds of each fold's mean test Dice, plus the pooled cases."""
    means = np.array([np.mean(f) for f in folds], dtype=np.float64)
    cases = np.concatenate([np.asarray(f, dtype=np.float64) for f in folds])
    return {"mean": float(means.mean()), "std_folds": float(means.std(ddof=0)),
            "std_cases": float(cases.std(ddof=0)), "n_folds": len(folds),
            "n_cases": int(cases.size)}


def paired_bootstrap(a, b, *, n: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of ``a − b`` over paired cases and its percentile bootstrap interval."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("paired_bootstrap needs two equal-length, non-empty case lists")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n, d.size))
    boot = d[idx].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": float(d.mean()), "low": float(lo), "high": float(hi), "n": int(d.size),
            "level": level}


def summarise(results: dict, *, seed: int = 0) -> dict:
    """``results[site][row]`` → per-site stats and the paired differences.

    Each ``results[site][row]`` is ``{"folds": [[dice per test case], ...]}`` or
    ``{"not_run": "why"}``.
    """
    out = {}
    for site, rows in results.items():
        table = {}
        for row, res in rows.items():
            if "not_run" in res:
                table[row] = {"not_run": res["not_run"]}
                continue
            table[row] = fold_stats(res["folds"])
            if res.get("ood"):
                table[row]["ood"] = {t: fold_stats(f) for t, f in res["ood"].items()}
            if res.get("realism"):
                table[row]["c2st"] = res["realism"]["c2st"]
            for key in ("seconds", "cpu_seconds"):
                if key in res:
                    table[row][key] = res[key]
        diffs = {}
        for a, b in DIFFERENCES:
            ra, rb = rows.get(a, {}), rows.get(b, {})
            if "folds" in ra and "folds" in rb:
                diffs[f"{a} - {b}"] = paired_bootstrap(
                    np.concatenate(ra["folds"]), np.concatenate(rb["folds"]), seed=seed)
        notes = [r["note"] for r in rows.values() if "note" in r]
        low = table.get("lower", {})
        if low.get("mean", 0.0) >= CEILING:
            notes.append(f"Lower Bound scores {low['mean']:.3f} ≥ {CEILING}: the site is too "
                         "easy for synthetic data to show anything; make its world harder")
        out[site] = {"rows": table, "differences": diffs, "notes": notes}
    return out


def markdown(summary: dict, *, title: str, notes: list[str] = (),
             titles: dict | None = None) -> str:
    """The report: one table per site, then the differences and notes; ``titles`` maps
    row keys to the names printed."""
    titles = titles or {}
    lines = [f"# {title}", ""]
    for site, s in summary.items():
        lines += [f"## Site {site}", "",
                  "| Row | Dice (mean ± std over folds) | std over cases | folds | cases | "
                  "C2ST | U-Net s (wall / CPU) |", "|---|---|---|---|---|---|---|"]
        for key, r in s["rows"].items():
            row = titles.get(key, key)
            if "not_run" in r:
                lines.append(f"| {row} | not run: {r['not_run']} | – | – | – | – | – |")
                continue
            c2st = f"{r['c2st']:.2f}" if "c2st" in r else "–"
            secs = f"{r['seconds']:.0f}" if "seconds" in r else "–"
            if "cpu_seconds" in r:
                secs += f" / {r['cpu_seconds']:.0f}"
            lines.append(f"| {row} | {r['mean']:.3f} ± {r['std_folds']:.3f} | "
                         f"{r['std_cases']:.3f} | {r['n_folds']} | {r['n_cases']} | "
                         f"{c2st} | {secs} |")
        lines += _ood_table(site, s["rows"], titles)
        for name, d in s["differences"].items():
            lines.append(f"\n{name}: {d['mean']:+.3f} (paired bootstrap "
                         f"{int(d['level'] * 100)} %: {d['low']:+.3f} to {d['high']:+.3f}, "
                         f"{d['n']} test cases)")
        lines += [f"\nNote: {n}" for n in s.get("notes", [])]
        lines.append("")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def _ood_table(site: str, rows: dict, titles: dict) -> list[str]:
    """OOD Dice per row: the site's test patients re-rendered at each other site."""
    targets = sorted({t for r in rows.values() for t in r.get("ood", {})})
    if not targets:
        return []
    lines = ["", f"OOD: site {site}'s test patients as scanned at another site "
             "(that site's Ours-Full enhancer on their labels and coarse CT); Dice mean ± "
             "std over cases", "", "| Row | " + " | ".join(f"as at {t}" for t in targets)
             + " |", "|---|" + "---|" * len(targets)]
    for key, r in rows.items():
        if "ood" not in r:
            continue
        cells = [f"{r['ood'][t]['mean']:.3f} ± {r['ood'][t]['std_cases']:.3f}"
                 if t in r["ood"] else "–" for t in targets]
        lines.append(f"| {titles.get(key, key)} | " + " | ".join(cells) + " |")
    return lines


def write_report(out: str | Path, results: dict, *, title: str, meta: dict,
                 notes: list[str] = (), seed: int = 0, titles: dict | None = None
                 ) -> tuple[Path, Path]:
    """Write ``report.json`` (every number, the meta: commands, seeds, configs),
    ``report.md`` and ``dice.png``; returns the first two paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results, seed=seed)
    j = write_json_atomic(out / "report.json", {"meta": meta, "results": results,
                                                "summary": summary, "notes": list(notes)})
    from fedsim_app.evaluate.plots import dice_plot

    dice_plot(out / "dice.png", results, titles=titles)
    notes = [*notes, "dice.png: each row's test-case Dice (dots) and their mean (bar)"]
    m = write_text_atomic(out / "report.md", markdown(summary, title=title, notes=notes,
                                                           titles=titles))
    return j, m
