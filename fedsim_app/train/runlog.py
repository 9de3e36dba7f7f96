"""The run folder: resolved config, metrics (CSV and JSONL), loss curves and sample grid."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from fedsim_app.io.atomic import atomic_path


class RunLog:
    """Metrics of a run, one row per step: ``phase``, ``step`` and the step's losses.

    On resume, rows past the checkpoint's position (logged before an interruption, then
    redone) are dropped, so the files read as one uninterrupted run.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.folder / "metrics.jsonl"
        self.csv = self.folder / "metrics.csv"
        self.rows: list[dict] = []
        if self.jsonl.exists():
            self.rows = [json.loads(line) for line in self.jsonl.read_text().splitlines()
                         if line.strip()]

    def truncate(self, phase: int, step: int) -> None:
        """Keep rows strictly before ``(phase, step)`` and rewrite the files."""
        self.rows = [r for r in self.rows if (r["phase"], r["step"]) < (phase, step)]
        with atomic_path(self.jsonl) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def log(self, row: dict) -> None:
        self.rows.append(row)
        with self.jsonl.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def _write_csv(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        with atomic_path(self.csv) as tmp, tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)

    def flush(self) -> None:
        """Rewrite the CSV (all columns seen so far) and the loss-curve PNG."""
        self._write_csv()
        self.plot()

    def plot(self) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = sorted({k for r in self.rows for k in r} - {"phase", "step", "lr", "seconds"})
        phases = [1, 2, 3] + ([4] if any(r["phase"] == 4 for r in self.rows) else [])
        fig, axes = plt.subplots(1, len(phases), figsize=(4.4 * len(phases), 3.6))
        for phase, ax in zip(phases, axes, strict=True):
            rows = [r for r in self.rows if r["phase"] == phase]
            for k in keys:
                pts = [(r["step"], r[k]) for r in rows if k in r]
                if pts:
                    x, y = np.array(pts).T
                    ax.plot(x, y, label=k, lw=1)
            ax.set_title(f"phase {phase}")
            ax.set_xlabel("step")
            if rows:
                ax.legend(fontsize=6)
        fig.tight_layout()
        out = self.folder / "loss_curves.png"
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
        return out


def write_sample_grid(path: str | Path, rows: list[tuple[str, list[np.ndarray]]],
                      cmaps: list[str], *, window: tuple[float, float] = (-0.4, 0.6)
                      ) -> Path:
    """A PNG grid: one row per named list of 2D images, one column per image kind;
    ``window`` the grey images' display range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_col = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n_col, figsize=(2.2 * n_col, 2.2 * len(rows)),
                             squeeze=False)
    for (name, images), ax_row in zip(rows, axes, strict=True):
        for j, (img, ax) in enumerate(zip(images, ax_row, strict=False)):
            is_label = cmaps[j] == "labels"
            ax.imshow(img, cmap="tab10" if is_label else cmaps[j],
                      vmin=0 if is_label else window[0],
                      vmax=9 if is_label else window[1],
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path
