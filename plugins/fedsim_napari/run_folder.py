"""What a ``fedsim train`` run folder says while it runs: metrics, progress, checkpoints.

Qt-free: the training panel polls these, and they are tested without a display. The run
writes ``metrics.jsonl`` a line per step (the last line may be half-written when read),
``samples.png`` and ``checkpoint.pt``; its progress bars (tqdm, on stderr) read
``phase 2:  40%|...| 4/10 [...]``; at its end it scores the model and writes
``quality.json``. :func:`launch_config` writes the settings the panel launches a run with.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_BAR = re.compile(r"phase (\d+):\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")
#: keys of a metrics row that are positions, not losses
POSITION_KEYS = ("phase", "step", "epoch", "seconds", "lr")


def read_metrics(folder: str | Path) -> list[dict]:
    """The run's metrics rows so far (a half-written last line is skipped)."""
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the line being written
    return rows


def loss_series(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{loss name: [(row index, value), ...]}`` for every numeric non-position key."""
    series: dict[str, list[tuple[int, float]]] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if key in POSITION_KEYS or not isinstance(value, (int, float)):
                continue
            series.setdefault(key, []).append((i, float(value)))
    return series


def parse_progress(text: str) -> dict[int, tuple[int, int]]:
    """``{phase: (done, total)}``: the last report of each phase in a chunk of the run's
    stderr (a chunk may end one phase's bar and start the next's)."""
    return {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in _BAR.finditer(text)}


def quality_summary(folder: str | Path, stdout: str = "") -> str | None:
    """A line per site of the figures ``fedsim train`` or ``federate`` wrote to quality.json
    at its end (the model on its dataset's test split) and the targets they miss; without
    the file, the command's ``stdout`` lines saying why it skipped them, else None (not
    finished, scored off, or the file unreadable)."""
    from fedsim_app.train.quality import QUALITY_FILE, target_misses

    skipped = [ln for ln in stdout.splitlines() if ln.startswith("quality: skipped")]
    lines = []
    try:
        data = json.loads((Path(folder) / QUALITY_FILE).read_text())
        rough = " (quick: rough figures)" if data["effort"] == "quick" else ""
        for key, q in data["sites"].items():
            misses = target_misses(q)
            n = int(q["test_volumes"])
            lines.append(
                f"Site {key}, held-out quality ({n} test volume{'s' * (n != 1)}, "
                f"{data['effort']}): shape IoU {q['shape_iou']:.3f}, material "
                f"{q['mat_hu_err']:.1f} HU, enhancer {q['enh_hu_err']:.1f} HU, noise ratio "
                f"{q['noise_ratio']:.2f}, C2ST {q['c2st']:.2f} (coarse CT "
                f"{q['c2st_coarse']:.2f}) — "
                + (f"misses {', '.join(misses)}" if misses else "every target met") + rough)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        lines = []
    return "\n".join(lines + skipped) or None


def checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoints in the run folder, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)


def launch_config(path: str | Path, preset: str, config: str | Path | None = None,
                  epochs: dict[int, int] | None = None) -> Path:
    """Write the settings a panel-launched ``fedsim train`` gets as ``--config`` TOML.

    ``fedsim train --config`` takes its base preset from the file (``paper`` when the file
    names none), not from ``--preset``, so the panel writes one file: ``preset`` (the
    panel's choice unless ``config`` names one), then ``config``'s settings, then the epochs
    per phase the panel set (``{phase: epochs}``, zero: the preset's). Written next to the
    run folder, the command line stays one a shell can repeat.
    """
    import tomllib

    data: dict = {"preset": preset}
    if config:
        config = Path(config)
        try:
            data.update(tomllib.loads(config.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{config}: cannot read the training config ({exc}); fix it "
                             "or clear the Config field") from None
    data.update({f"phase{p}_epochs": n for p, n in (epochs or {}).items() if n > 0})
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            raise ValueError(f"{config}: [{key}] tables are not training settings; keep "
                             "the config flat (key = value)")
        lines.append(f"{key} = {json.dumps(value)}")  # JSON scalars and lists are TOML
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
