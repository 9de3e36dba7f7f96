"""What the federated panel shows, without Qt: the ``fedsim federate`` command it runs and
the state of the run read back from its folder (``rounds.jsonl``, ``federation.json``,
the round views in ``views/``).

The run itself is the CLI's, in a separate process; this module only builds its argument
list and turns the round log into per-site cards and loss curves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

RUNTIMES = ("inprocess", "flower")
PRESETS = ("smoke", "cpu", "paper")
SCORES = ("iou",)  # metrics where higher is better: not plotted as losses


@dataclass(frozen=True)
class FederatedSettings:
    """The panel's form: which sites, which data, how long, how private."""

    cohort: str
    out: str
    sites: tuple[str, ...] = ("A", "B", "C")
    rounds: int = 0  # 0: the preset's full schedule
    preset: str = "cpu"
    runtime: str = "inprocess"
    labels: int = 0  # 0: each site's default budget
    dp_epsilon: float = 0.0  # 0: no differential privacy
    no_matrix: bool = False
    view_every: int = 10  # every N rounds one latent through each site (0: off; in-process)

    def args(self, *, resume: bool = False) -> list[str]:
        """The ``fedsim federate`` arguments (a resumed run keeps its own settings)."""
        if resume:
            return ["federate", "--out", self.out, "--resume"]
        args = ["federate", "--sites", ",".join(self.sites), "--cohort", self.cohort,
                "--preset", self.preset, "--runtime", self.runtime, "--out", self.out]
        if self.rounds:
            args += ["--rounds", str(self.rounds)]
        for key in self.sites if self.labels else ():
            args += ["--labels", f"{key}={self.labels}"]
        if self.dp_epsilon:
            args += ["--dp-epsilon", f"{self.dp_epsilon:g}"]
        if self.no_matrix:
            args.append("--no-matrix")
        if self.view_every and self.runtime == "inprocess":  # Flower's sites draw none
            args += ["--view-every", str(self.view_every)]
        return args


@dataclass
class SiteCard:
    """One hospital as the panel shows it."""

    key: str
    scanner: str = ""
    labelled: int | None = None  # labelled training volumes (from the run's record)
    unlabelled: int | None = None  # unlabelled ones (in-process runs record them)
    status: str = "waiting"  # waiting, trained, dropped, rejected
    losses: dict[str, float] = field(default_factory=dict)
    bytes_sent: int = 0
    rounds_done: int = 0

    def text(self) -> str:
        loss = ", ".join(f"{k} {v:.3g}" for k, v in list(self.losses.items())[:3]) or "—"
        lab = "" if self.labelled is None else f" · {self.labelled} labelled"
        lab += "" if self.unlabelled is None else f" + {self.unlabelled} unlabelled"
        return (f"Site {self.key}: {self.scanner}\n{self.status} · {self.rounds_done} "
                f"rounds{lab}"
                f"\nlast step: {loss}\nsent this round: {self.bytes_sent / 1e6:.2f} MB")


@dataclass
class RunView:
    """The run as read from its folder."""

    rounds: list[dict]
    total: int | None
    cards: dict[str, SiteCard]
    views: list[tuple[int, Path]] = field(default_factory=list)  # (rounds done, png)

    @property
    def done(self) -> int:
        return len(self.rounds)

    @property
    def dp_epsilon(self) -> float | None:
        return self.rounds[-1].get("dp_epsilon") if self.rounds else None

    def view_caption(self, i: int) -> str:
        """What view ``i`` shows: which round, which phase, what the columns are."""
        done, _ = self.views[i]
        of = f" of {self.total}" if self.total else ""
        phase = (f", phase {self.rounds[done - 1]['phase']}"
                 if 0 < done <= len(self.rounds) else "")
        when = "before the first round" if done == 0 else f"after round {done}{of}{phase}"
        rows = ", ".join(self.cards) or "each site"
        return (f"view {i + 1}/{len(self.views)}: {when} — the same latent through "
                f"{rows} (rows): generated labels, coarse CT, enhanced")

    def loss_series(self) -> dict[str, list[tuple[int, float]]]:
        """``{"A mse": [(round, value), ...]}``: per site, the first loss of each round's
        step (IoU is a score, not a loss, and is passed over); the step kinds report
        different losses, so each (site, loss) is its own series."""
        out: dict[str, list[tuple[int, float]]] = {}
        for r in self.rounds:
            for site, metrics in r["metrics"].items():
                name = next((k for k in metrics if k not in SCORES), None)
                if name is not None:
                    out.setdefault(f"{site} {name}", []).append(
                        (int(r["round"]), float(metrics[name])))
        return out


def read_run(folder: str | Path, sites=()) -> RunView:
    """The state of the federated run in ``folder`` (an empty view before it starts)."""
    from fedsim_app.federated.views import list_views
    from fedsim_app.sites import get_site

    folder = Path(folder)
    rounds: list[dict] = []
    log = folder / "rounds.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rounds.append(json.loads(line))
            except ValueError:
                break  # a line being written
    meta = folder / "federation.json"
    keys, labels, sizes = list(sites), {}, {}
    if meta.is_file():
        try:
            record = json.loads(meta.read_text())
            keys, labels = record["sites"], record["labels"]
            sizes = record.get("sizes") or {}
        except (ValueError, KeyError):
            pass
    cards = {}
    for k in keys:
        try:
            scanner = get_site(k).scanner.description
        except Exception:  # noqa: BLE001 (an unknown site still gets a card)
            scanner = "?"
        n_lab, n_unl = sizes.get(k, (labels.get(k), None))
        cards[k] = SiteCard(k, scanner, n_lab, n_unl)
    for r in rounds:
        for k, card in cards.items():
            if k in r["accepted"]:
                card.status, card.rounds_done = "trained", card.rounds_done + 1
                card.losses = dict(r["metrics"].get(k, {}))
            elif k in r.get("rejected", {}):
                card.status = "rejected"
            elif k in r.get("missing", []):
                card.status = "dropped"
            card.bytes_sent = int(r.get("bytes_sent", {}).get(k, 0))
    return RunView(rounds, _total(folder), cards, list_views(folder))


def _total(folder: Path) -> int | None:
    """Rounds in the run's plan (from the server's checkpoint), None before it exists."""
    path = folder / "server.pt"
    if not path.is_file():
        return None
    try:
        from fedsim_app.federated.server import load_server_checkpoint

        return int(sum(load_server_checkpoint(path)["plan"]["phase_rounds"]))
    except Exception:  # noqa: BLE001 (being written: asked again at the next poll)
        return None
