"""What a running ``fedsim export`` says: cases done, rate, time left; its novelty table.

Qt-free, for the export panel and its tests. The command's progress bar (tqdm, stderr)
reads ``export site A:  33%|...| 1/3 [...]``; the dataset folder it writes holds
``fedsim_novelty.csv`` (one row per case).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

_BAR = re.compile(r"export site \w+:\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")


def parse_cases(text: str) -> tuple[int, int] | None:
    """The last ``(done, total)`` in a chunk of the command's stderr, or None."""
    found = None
    for m in _BAR.finditer(text):
        found = (int(m.group(1)), int(m.group(2)))
    return found


@dataclass(frozen=True)
class Rate:
    """Cases per minute and seconds left, from cases done in this run since ``start``."""

    done: int
    total: int
    per_minute: float | None
    seconds_left: float | None

    @classmethod
    def measure(cls, done: int, total: int, first_done: int, elapsed_s: float) -> Rate:
        """``first_done`` cases were there already (a resumed export): they are not timed."""
        made = done - first_done
        if made <= 0 or elapsed_s <= 0:
            return cls(done, total, None, None)
        per_s = made / elapsed_s
        return cls(done, total, 60.0 * per_s, (total - done) / per_s)

    def text(self) -> str:
        if self.per_minute is None:
            return f"{self.done}/{self.total} cases"
        left = self.seconds_left
        when = f"{left:.0f} s" if left < 120 else f"{left / 60:.1f} min"
        return f"{self.done}/{self.total} cases · {self.per_minute:.1f} cases/min · {when} left"


def dataset_folder(out: str | Path) -> Path | None:
    """The dataset folder an export into ``out`` wrote (``out`` itself or the newest
    ``Dataset*`` inside it with a novelty table), or None."""
    out = Path(out)
    if (out / "fedsim_novelty.csv").is_file():
        return out
    found = sorted(out.glob("Dataset*/fedsim_novelty.csv"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def read_novelty(folder: str | Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the dataset's novelty table (empty when missing)."""
    path = Path(folder) / "fedsim_novelty.csv"
    if not path.is_file():
        return [], []
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return (rows[0], rows[1:]) if rows else ([], [])
